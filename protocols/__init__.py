"""MPC protocols of mpsim: short functions whose docstrings state their steps, cost and source.

Each interactive protocol is registered with its declared cost (``protocols.registry``); the test suite
checks measured == declared for every registered protocol on every backend. Importing this package
registers them all.
"""
from .arith import beaver_matmul, beaver_mul, beaver_square, reveal, share_input
from .boolean import a2b, and_, b2a, b2a_bit, msb, not_, reveal_bits, share_bits, xor
from .compare import abs_, eq, eqz, ge, gt, le, lt, ltz, maximum, minimum, relu, select, sign, where
from .fxp import matmul, matmul_public, mul, mul_public
from .nonlinear import NonlinearConfig, exp, gelu, layernorm, reciprocal, rmsnorm, rsqrt, silu, softmax
from .oblivious import gather, onehot, onehot_equality, onehot_rotation
from .reduce import argmax, argmin, max, min
from .registry import REGISTRY, markdown_table, protocol
from .reuse import MaskedOperand, gather_rotated, mask_operand, matmul_reused, scatter_rotated
from .topk import shuffle, topk, topk_max, topk_shuffle, topk_sort
from .trunc import trunc_local, trunc_pr, truncate
from . import aby3  # registers the ABY3 scheme's cells
from . import fss  # registers the FSS suite's cells

__all__ = [
    "REGISTRY", "MaskedOperand", "a2b", "abs_", "and_", "argmax", "argmin", "b2a", "b2a_bit", "beaver_matmul",
    "beaver_mul", "beaver_square", "eq", "eqz", "gather", "gather_rotated", "ge", "gt", "le", "lt", "ltz", "markdown_table",
    "mask_operand", "matmul", "matmul_public", "matmul_reused", "max", "maximum", "min", "minimum", "msb",
    "mul", "mul_public", "not_", "onehot", "onehot_equality", "onehot_rotation", "protocol", "relu", "reveal",
    "reveal_bits", "scatter_rotated", "select", "share_bits", "share_input", "shuffle", "sign", "topk", "topk_max", "topk_shuffle", "topk_sort", "trunc_local", "trunc_pr", "truncate",
    "where", "xor",
    "NonlinearConfig", "exp", "gelu", "layernorm", "reciprocal", "rmsnorm", "rsqrt", "silu", "softmax",
]
