"""Network profiles: the bandwidth and round-trip time a ledger is priced on.

A :class:`NetworkProfile` is two numbers and a name: the bandwidth of each directed link between two
parties (bits per second) and the round-trip time (seconds, what ``ping`` reports). The presets below are
the settings this project compares against; each names where its numbers come from in ``source``.
:func:`parse_profile` accepts a preset name or a ``BANDWIDTH/PING`` string such as ``1gbit/0.5ms``;
:func:`parse_profiles` a comma-separated list of either.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from numbers import Real

__all__ = ["NetworkProfile", "PROFILES", "parse_profile", "parse_profiles", "format_bandwidth", "format_time"]

PER_ROUND = ("half_rtt", "rtt")


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class NetworkProfile:
    """A network between the parties: ``bandwidth_bps`` per directed link (bits/s), ``rtt_s`` round-trip
    time (s), and ``source``: where the numbers come from."""

    name: str
    bandwidth_bps: float
    rtt_s: float
    source: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip() or "," in self.name:
            raise ValueError(f"a profile name is a non-empty string without ',', got {self.name!r}")
        object.__setattr__(self, "bandwidth_bps", _positive("bandwidth_bps", self.bandwidth_bps))
        object.__setattr__(self, "rtt_s", _positive("rtt_s", self.rtt_s))
        if not isinstance(self.source, str):
            raise TypeError(f"source must be a string, got {self.source!r}")

    def latency(self, per_round: str = "half_rtt") -> float:
        """Seconds of latency charged per round: RTT/2 (``"half_rtt"``, a simultaneous exchange where every
        party sends at once and waits for the others' messages) or the full RTT (``"rtt"``)."""
        if per_round == "half_rtt":
            return self.rtt_s / 2
        if per_round == "rtt":
            return self.rtt_s
        raise ValueError(f"per_round must be one of {PER_ROUND}, got {per_round!r}")

    def describe(self) -> str:
        return f"{format_bandwidth(self.bandwidth_bps)}, {format_time(self.rtt_s)} RTT"

    def as_dict(self) -> dict:
        return {"name": self.name, "bandwidth_bps": self.bandwidth_bps, "rtt_s": self.rtt_s, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkProfile":
        return cls(d["name"], d["bandwidth_bps"], d["rtt_s"], d.get("source", ""))


_CHEETAH_LINE = (
    "the {kind} setting (traffic-controlled with tc) of the Cheetah (Huang et al., USENIX Security 2022) / "
    "BumbleBee (Lu et al., NDSS 2025) line of 2PC inference work: {bw} with {ping} ping"
)

PROFILES: dict[str, NetworkProfile] = {
    p.name: p
    for p in (
        NetworkProfile("lan", 3e9, 0.3e-3, _CHEETAH_LINE.format(kind="LAN", bw="3 Gbit/s", ping="0.3 ms")),
        NetworkProfile("wan", 400e6, 40e-3, _CHEETAH_LINE.format(kind="WAN", bw="400 Mbit/s", ping="40 ms")),
        NetworkProfile("lan-1g", 1e9, 0.5e-3,
                       "a commodity 1 Gbit/s LAN with 0.5 ms ping; round numbers for sensitivity analysis, "
                       "not taken from a paper"),
        NetworkProfile("wan-100m", 100e6, 80e-3,
                       "a slower 100 Mbit/s WAN with 80 ms ping; round numbers for sensitivity analysis, "
                       "not taken from a paper"),
    )
}
"""Preset profiles by name. ``lan`` and ``wan`` are the settings 2PC inference papers of the Cheetah /
BumbleBee line throttle their machines to; ``lan-1g`` and ``wan-100m`` bracket them."""

_BW_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
_SPEC = re.compile(
    rf"^(?P<bw>{_NUMBER})\s*(?P<prefix>[kmg]?)(?:bit(?:ps|/s)?|bps)\s*/\s*(?P<rtt>{_NUMBER})\s*(?P<tu>ms|us|µs|s)$"
)

_FORMS = (
    "a preset name ({presets}) or BANDWIDTH/PING, e.g. '1gbit/0.5ms', '400mbit/40ms', '3gbps/300us', "
    "'100mbit/s/0.08s'; bandwidth units bit, kbit, mbit, gbit (optionally followed by 'ps' or '/s', or written "
    "bps, kbps, mbps, gbps), ping units s, ms, us; the ping is the round-trip time"
)


def _forms() -> str:
    return _FORMS.format(presets=", ".join(PROFILES))


def parse_profile(text: str) -> NetworkProfile:
    """A preset name (``lan``, ``wan``, ``lan-1g``, ``wan-100m``) or ``BANDWIDTH/PING`` (``1gbit/0.5ms``).

    Parsed profiles are named by their (stripped, lower-cased) text. Raises ValueError naming the accepted
    forms for anything else.
    """
    if isinstance(text, NetworkProfile):
        return text
    if not isinstance(text, str):
        raise TypeError(f"a network profile is a string, got {text!r}")
    key = text.strip().lower()
    if key in PROFILES:
        return PROFILES[key]
    m = _SPEC.match(key)
    if m is None:
        raise ValueError(f"cannot read network profile {text!r}: expected {_forms()}")
    bandwidth = float(m["bw"]) * _BW_UNITS[m["prefix"]]
    rtt = float(m["rtt"]) * _TIME_UNITS[m["tu"]]
    if bandwidth <= 0 or rtt <= 0 or not math.isfinite(bandwidth) or not math.isfinite(rtt):
        raise ValueError(f"network profile {text!r}: bandwidth and ping must be positive and finite")
    return NetworkProfile(key, bandwidth, rtt, f"user-specified: {format_bandwidth(bandwidth)}, "
                                               f"{format_time(rtt)} ping")


def parse_profiles(text: str) -> list[NetworkProfile]:
    """A comma-separated list of profiles (``"lan,wan,1gbit/0.5ms"``); names must be distinct."""
    if not isinstance(text, str):
        raise TypeError(f"network profiles are a comma-separated string, got {text!r}")
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ValueError(f"empty network profile in {text!r}: expected a comma-separated list, each {_forms()}")
    profiles = [parse_profile(item) for item in items]
    names = [p.name for p in profiles]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"network profile(s) listed twice: {', '.join(dupes)}")
    return profiles


def format_bandwidth(bps: float) -> str:
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= size:
            return f"{bps / size:g} {unit}"
    return f"{bps:g} bit/s"


def format_time(seconds: float) -> str:
    """Seconds with a readable unit and 3 significant digits (``0.0003`` -> ``300 us``)."""
    s = abs(seconds)
    if s == 0:
        return "0 s"
    if s >= 1000:
        return f"{seconds:,.0f} s"
    for unit, size in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
