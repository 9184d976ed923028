"""Declared-cost composition of the non-linear protocols (``protocols.nonlinear``): formulas over the
scheme's cells, and the dims variables read from the configuration of the actual call."""
from __future__ import annotations

from ..cost import Expr, Formula
from ..registry import COMPOSED
from .config import NonlinearConfig


def _fmul(d, nx: str, ny: str, n: str) -> Formula:
    """A fixed-point product (``_mul``): the scheme's ring product and the truncation of its output."""
    return d.ring_mul.at(nx=nx, ny=ny, n=n) + d.after_product(n)


def _fsquare(d, n: str) -> Formula:
    return d.ring_square.at(n=n) + d.after_product(n)


def _goldschmidt_cost(d, iters: str, m: str) -> Formula:
    """``_goldschmidt`` on m elements: iters - 1 stacked products (2m by m), then one of m."""
    return _fmul(d, f"2*{m}", m, f"2*{m}") * (Expr(iters) - 1) + _fmul(d, m, m, m)


def _exp_cost(d, n: str = "n") -> Formula:
    """exp, composed from the scheme's cells (see ``exp``'s steps); lim, t, s, q, c as in its variables."""
    limit = d.trunc(n) + _fsquare(d, n) * Expr("t")
    pade = (d.trunc(n) + _fsquare(d, n) + d.trunc(f"2*{n}") + _goldschmidt_cost(d, "q", n)
            + _fsquare(d, n) * Expr("s"))
    core = limit * Expr("lim") + pade * Expr("1 - lim")
    # clipping: the comparison runs beside the polynomial, then one selection
    return d.select_after(core, d.msb.at(n=n) * Expr("c"), nb=n, ny=n, n=n, times=Expr("c"))


def _recip_cost(d, m: str = "m") -> Formula:
    """reciprocal on m elements (see its steps): the one-hot of the leading bit, normalisation, the iteration
    (Goldschmidt when gs, else Newton), rescaling."""
    onehot = d.msb.at(n=f"{m}*(P-1)")
    select_truncate = d.bit_select.at(nb=f"{m}*P", ny=m, n=f"{m}*P") + d.trunc(m)
    goldschmidt = _fmul(d, m, m, m) + _goldschmidt_cost(d, "I", m)
    newton = _fmul(d, m, m, m) * Expr("2*I")
    iterate = select_truncate + (goldschmidt * Expr("gs") + newton * Expr("1 - gs"))
    # the rescaling selects by the one-hot again: any stage of it on the bits alone runs beside the iteration
    return onehot + d.select_after(iterate, Formula.of(), nb=f"{m}*P", ny=m, n=f"{m}*P") + d.trunc(m)


def _softmax_cost(d) -> Formula:
    """The row max, exp of x - max, one reciprocal per row, one broadcast product: the callees' cells."""
    return d.max.at(rows="R") + d.exp.at(n="R*n") + d.reciprocal.at(m="R") + _fmul(d, "R*n", "R", "R*n")


BOTH = COMPOSED


def _exp_vars(cfg: NonlinearConfig) -> dict:
    return {"lim": int(cfg.exp_method == "limit"), "t": cfg.exp_iters, "s": cfg.exp_pade_squarings,
            "q": cfg.exp_pade_iters, "c": int(cfg.exp_clip is not None)}


def _norm_vars(session, cfg: NonlinearConfig, frac: int) -> dict:
    f = frac or session.frac_bits
    return {"P": f + cfg.log2_max(session.ring.bits, f)}


def _recip_vars(session, cfg, frac) -> dict:
    return {"gs": int(cfg.recip_method == "goldschmidt"), "I": cfg.recip_iters, **_norm_vars(session, cfg, frac)}


_EXP_VARS_DOC = ("n = elements; lim = 1 for the limit method (t squarings), 0 for Pade (s squarings, q division "
                 "steps); c = 1 when clipping")
_RECIP_VARS_DOC = "I = iterations; gs = 1 for Goldschmidt, 0 for Newton; P = f + D normalisation positions"


def _rsqrt_cost(d, m: str = "m") -> Formula:
    """rsqrt on m elements (see its steps): the one-hot of the leading bit and normalisation as reciprocal's,
    y0 by one truncation, I Newton steps (a product of [x_n, y] by y, a ring product, one truncation), then
    rescaling."""
    onehot = d.msb.at(n=f"{m}*(P-1)")
    select_truncate = d.bit_select.at(nb=f"{m}*P", ny=m, n=f"{m}*P") + d.trunc(m)
    newton = _fmul(d, f"2*{m}", m, f"2*{m}") + d.ring_mul.at(nx=m, ny=m, n=m) + d.trunc(m)
    iterate = select_truncate + d.trunc(m) + newton * Expr("I")
    return onehot + d.select_after(iterate, Formula.of(), nb=f"{m}*P", ny=m, n=f"{m}*P") + d.trunc(m)


def _norm_cost(centre: bool):
    """layernorm (centre) or rmsnorm on R rows of n: the mean (layernorm: two truncations of the row sums),
    the squares and their mean, gamma (a product when shared, a truncation when public: gs, gp) beside rsqrt,
    the final product."""

    def cost(d) -> Formula:
        mean = d.trunc("R") * 2 if centre else Formula.of()
        gamma = _fmul(d, "R*n", "ng", "R*n") * Expr("gs") + d.trunc("R*n") * Expr("gp")
        return (mean + _fsquare(d, "R*n") + d.trunc("R") * 2 + (gamma | d.rsqrt.at(m="R"))
                + _fmul(d, "R*n", "R", "R*n"))

    return cost


def _piecewise_cost(squares: int, stacked: int, plain: int):
    """GeLU / SiLU: the polynomial's products (``squares`` squares, ``stacked`` products of two stacked values
    by one, ``plain`` products of one by one) and one truncation of both polynomials, beside one msb of the
    three stacked differences; then one selection of the three pieces."""

    def cost(d) -> Formula:
        poly = (_fsquare(d, "n") * squares + _fmul(d, "2*n", "n", "2*n") * stacked + _fmul(d, "n", "n", "n") * plain
                + d.trunc("2*n"))
        return d.select_after(poly, d.msb.at(n="3*n"), nb="3*n", ny="3*n", n="3*n")

    return cost
