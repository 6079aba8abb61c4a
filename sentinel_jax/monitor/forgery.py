"""Timestamp-forgery rules: signs that a file's times were set by hand.

``touch -d``, ``utimensat`` and timestomping tools set atime and mtime freely;
the kernel alone sets ctime (to "now", on every change) and the birth time
(at creation). A forger therefore leaves traces in how the four times relate.

Strong signals, each enough for an alarm:

* ctime earlier than mtime (mtime set into the future, or the clock moved);
* ctime earlier than the birth time;
* any time in the future;
* mtime moved back before the baseline's value on the same inode.

Weak signals, common on honest systems (``tar``, ``dpkg`` and ``cp -p`` all
keep whole-second mtimes older than the file), which only add up:

* whole-second nanoseconds in mtime (weight 1);
* mtime older than the birth time (weight 1);
* content changed while mtime stayed the same (weight 2);
* mtime moved back on a file replaced since the baseline (weight 1).

A file alarms when its score (strong signals weigh ``strong_weight``) reaches
``alarm_score``; the defaults keep the first two weak signals, which every
package-installed file shows, below it.
"""

from __future__ import annotations

import dataclasses

from sentinel_jax.monitor.integrity_scan import FileEntry
from sentinel_jax.monitor.pathnames import escape_path

_SECOND = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class ForgeryRules:
    """Weights and tolerances of the rules.

    Attributes:
        future_slack_ns: how far past "now" a time may be (clock skew).
        strong_weight: score of one strong signal.
        alarm_score: score at which a file raises an alarm.
        weak_weights: score of each weak rule, by rule name.
    """

    future_slack_ns: int = 5 * _SECOND
    strong_weight: int = 3
    alarm_score: int = 3
    weak_weights: tuple[tuple[str, int], ...] = (
        ("whole_second_mtime", 1),
        ("mtime_before_birth", 1),
        ("content_changed_same_mtime", 2),
        ("replaced_with_older_mtime", 1),
    )


@dataclasses.dataclass(frozen=True)
class Signal:
    """One rule that fired on one file."""

    rule: str
    reason: str
    strong: bool
    weight: int


@dataclasses.dataclass(frozen=True)
class ForgeryFinding:
    """The signals on one file, their total score and severity.

    ``severity`` is ``high`` (a strong signal), ``medium`` (weak signals that
    reach the alarm score) or ``low`` (weak signals below it: no alarm).
    """

    path: bytes
    signals: tuple[Signal, ...]
    score: int
    severity: str
    alarm: bool

    @property
    def reason(self) -> str:
        return "; ".join(signal.reason for signal in self.signals)

    def to_json(self) -> dict:
        return {
            "path": escape_path(self.path), "severity": self.severity,
            "score": self.score, "alarm": self.alarm, "reason": self.reason,
            "signals": [dataclasses.asdict(signal) for signal in self.signals],
        }


def _format_ns(value: int) -> str:
    seconds, nanos = divmod(value, _SECOND)
    return f"{seconds}.{nanos:09d}"


def timestamp_signals(entry: FileEntry, baseline: FileEntry | None, now_ns: int,
                      rules: ForgeryRules = ForgeryRules()) -> list[Signal]:
    """Every forgery rule that fires on ``entry``.

    Args:
        entry: the file as scanned now.
        baseline: the same path in the baseline, if it was there.
        now_ns: the current time in nanoseconds since the epoch.
        rules: weights and tolerances.
    """
    # Called once per scanned file: no closures, and the rare branches build
    # their reasons only when they fire.
    signals: list[Signal] = []
    strong_weight = rules.strong_weight
    mtime, ctime, btime = entry.mtime_ns, entry.ctime_ns, entry.btime_ns
    if ctime < mtime:
        signals.append(Signal(
            "ctime_before_mtime", f"ctime {_format_ns(ctime)} is earlier than "
            f"mtime {_format_ns(mtime)}", True, strong_weight))
    if btime is not None and ctime < btime:
        signals.append(Signal(
            "ctime_before_birth", f"ctime {_format_ns(ctime)} is earlier than "
            f"birth time {_format_ns(btime)}", True, strong_weight))
    limit = now_ns + rules.future_slack_ns
    if (entry.atime_ns > limit or mtime > limit or ctime > limit
            or (btime is not None and btime > limit)):
        future = [name for name, value in (("atime", entry.atime_ns),
                                           ("mtime", mtime), ("ctime", ctime),
                                           ("birth time", btime))
                  if value is not None and value > limit]
        signals.append(Signal("time_in_future", f"{', '.join(future)} in the future",
                              True, strong_weight))
    weak: list[tuple[str, str]] = []
    if baseline is not None and mtime < baseline.mtime_ns:
        moved = (f"mtime moved back from {_format_ns(baseline.mtime_ns)} "
                 f"to {_format_ns(mtime)}")
        if entry.inode == baseline.inode and entry.device == baseline.device:
            signals.append(Signal("mtime_moved_back", moved, True, strong_weight))
        else:
            weak.append(("replaced_with_older_mtime", f"{moved} on a replaced file"))
    if mtime % _SECOND == 0:
        weak.append(("whole_second_mtime", "mtime has whole-second nanoseconds"))
    if btime is not None and mtime < btime:
        weak.append(("mtime_before_birth", f"mtime {_format_ns(mtime)} is older "
                     f"than birth time {_format_ns(btime)}"))
    if (baseline is not None and entry.sha256 and baseline.sha256
            and entry.sha256 != baseline.sha256 and mtime == baseline.mtime_ns):
        weak.append(("content_changed_same_mtime",
                     "content changed but mtime did not"))
    if weak:
        weights = dict(rules.weak_weights)
        signals.extend(Signal(rule, reason, False, weights[rule])
                       for rule, reason in weak if weights.get(rule, 0) > 0)
    return signals


def assess_forgery(entry: FileEntry, baseline: FileEntry | None, now_ns: int,
                   rules: ForgeryRules = ForgeryRules()) -> ForgeryFinding | None:
    """The forgery finding on ``entry``, or ``None`` when no rule fires."""
    signals = timestamp_signals(entry, baseline, now_ns, rules)
    if not signals:
        return None
    score = sum(signal.weight for signal in signals)
    alarm = score >= rules.alarm_score
    if any(signal.strong for signal in signals):
        severity = "high"
    else:
        severity = "medium" if alarm else "low"
    return ForgeryFinding(entry.path, tuple(signals), score, severity, alarm)
