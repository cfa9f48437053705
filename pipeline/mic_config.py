"""`data.mic`: the microphone and level settings of the data stage (a section of `sepipe.config.DataConfig`,
kept in its own module so config.py stays small; built and validated like every config section)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from sepipe.errors import check

MAX_PEAKS = 4      # peaking filters a device may have (every mixture draws this many: sepipe.data.mic)


@dataclass(frozen=True)
class MicConfig:
    """The capture chain of real devices, simulated per mixture (`data.mic`; signal code in sepipe.data.mic).

    A share `probability` of the mixtures is coloured by a device EQ drawn for that mixture: a high-pass
    (small-device microphones lose the lows), a low and a high shelf and `peaks` peaking filters (port and
    housing resonances). The EQ colours what the microphone hears, speech and noise alike, so it is applied
    to the target as well: the product suppresses noise, it does not undo the microphone. Independently, a
    share `clip_probability` of the noisy inputs is driven `clip_drive_db` past full scale into hard
    clipping; the target is never clipped. Frequencies and Q are drawn log-uniformly, gains and the drive
    uniformly; each mixture's draws are recorded in mixtures.csv.
    Off by default: a config without `mic` builds and serves exactly the data of before (no draws).
    """

    enabled: bool = False
    probability: float = 0.5                            # share of mixtures coloured by a device EQ
    highpass_hz: tuple[float, float] = (50.0, 300.0)    # 2nd-order Butterworth high-pass cutoff (Hz)
    low_shelf_hz: tuple[float, float] = (100.0, 400.0)  # low shelf midpoint (Hz)
    high_shelf_hz: tuple[float, float] = (2000.0, 6000.0)   # high shelf midpoint (Hz)
    shelf_db: tuple[float, float] = (-6.0, 6.0)         # gain of each shelf (dB)
    peaks: tuple[int, int] = (1, 2)                     # number of peaking filters, drawn uniformly
    peak_hz: tuple[float, float] = (200.0, 6000.0)      # peaking filter centre (Hz)
    peak_db: tuple[float, float] = (-8.0, 8.0)          # peaking filter gain at its centre (dB)
    peak_q: tuple[float, float] = (0.7, 4.0)            # peaking filter Q
    clip_probability: float = 0.1                       # share of noisy inputs driven into clipping
    clip_drive_db: tuple[float, float] = (0.0, 12.0)    # drive past the gain where the peak hits full scale (dB)

    def settings(self) -> dict:
        """Every setting but `enabled`, as JSON reads it back (lists, not tuples): the dataset's identity."""
        return {f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
                for f in fields(self) if f.name != "enabled"}

    def validate(self, src: str) -> None:
        key = "data.mic."

        def span(name: str, low: float, high: float, unit: str) -> None:
            value = getattr(self, name)
            check(src, key + name, value, low <= value[0] <= value[1] <= high,
                   f"[low, high] with {low:g} <= low <= high <= {high:g} ({unit})")

        check(src, key + "probability", self.probability, 0.0 <= self.probability <= 1.0, "0 to 1")
        check(src, key + "clip_probability", self.clip_probability, 0.0 <= self.clip_probability <= 1.0, "0 to 1")
        span("highpass_hz", 20.0, 1000.0, "Hz")
        span("low_shelf_hz", 20.0, 1000.0, "Hz")
        span("high_shelf_hz", 1000.0, 7000.0, "Hz; below the 8 kHz Nyquist frequency")
        span("shelf_db", -15.0, 15.0, "dB")
        span("peaks", 0, MAX_PEAKS, "filters")
        span("peak_hz", 50.0, 7000.0, "Hz; below the 8 kHz Nyquist frequency")
        span("peak_db", -15.0, 15.0, "dB")
        span("peak_q", 0.3, 10.0, "Q")
        span("clip_drive_db", 0.0, 30.0, "dB")
