"""MPC protocols of mpsim: short functions whose docstrings state their steps, cost and source.

Each interactive protocol is registered with its declared cost (``protocols.registry``); the test suite
checks measured == declared for every registered protocol on every backend. Importing this package
registers them all.
"""
from .arith import beaver_matmul, beaver_mul, beaver_square, reveal, share_input
from .fxp import matmul, matmul_public, mul, mul_public
from .registry import REGISTRY, markdown_table, protocol
from .reuse import MaskedOperand, mask_operand, matmul_reused
from .trunc import trunc_local, trunc_pr, truncate

__all__ = [
    "REGISTRY", "MaskedOperand", "beaver_matmul", "beaver_mul", "beaver_square", "markdown_table",
    "mask_operand", "matmul", "matmul_public", "matmul_reused", "mul", "mul_public", "protocol", "reveal",
    "share_input", "trunc_local", "trunc_pr", "truncate",
]
