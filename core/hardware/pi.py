"""The Raspberry Pi backend: RPi.GPIO for PWM, LEDs and the tachometer, spidev for the ADC.

Imported only on a Pi (install the ``pi`` extra: ``pip install reactorkit[pi]``).
Pin numbers (BCM) and the ADC wiring come from ``[hardware.pi]``:

* ``pwm_pins``: five pins for PWM channels 1–5 (default ``17,13,16,12,18``);
  ``pwm_hz`` the frequency (default 200 Hz; pumps and the heater may use others
  via ``pwm_hz_<channel>``).
* ``led_pins``: four pins driving LED channels A–D through PWM (default ``5,6,19,26``).
* ``tach_pin``: the stirrer's hall sensor (default 25); RPM = edges × 60 / elapsed s
  (two edges per revolution are counted once).
* ``adc_bus``, ``adc_device``: SPI bus/device of an MCP3208-class 12-bit ADC
  (channel n = photodiode n); ``adc_vref`` its reference voltage (default 4.096 V).
* ``temperature_adc_channel``: ADC channel of an analogue temperature sensor
  (TMP36-class: °C = (V − 0.5) × 100; default 5).
"""

from __future__ import annotations

import threading
import time

from reactorkit.core.config import Config
from reactorkit.core.hardware.base import ADC_CHANNELS, LED_CHANNELS, PWM_CHANNELS, Hardware, HardwareError, check_duty_cycle


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


class PiHardware(Hardware):
    """Drives the unit's board through RPi.GPIO and spidev.

    Raises:
        HardwareError: the GPIO or SPI libraries are missing (not on a Pi, or
            the ``pi`` extra is not installed).
    """

    def __init__(self, config: Config) -> None:
        try:
            import RPi.GPIO as GPIO  # type: ignore[import-not-found]
            import spidev  # type: ignore[import-not-found]
        except ImportError as exc:
            raise HardwareError("RPi.GPIO and spidev are needed on a Pi: pip install 'reactorkit[pi]'") from exc
        section = config["hardware.pi"] if config.has_section("hardware.pi") else {}
        self.GPIO = GPIO
        GPIO.setmode(GPIO.BCM)
        GPIO.setwarnings(False)
        self._pwm_pins = dict(zip(PWM_CHANNELS, _ints(section.get("pwm_pins", "17,13,16,12,18"))))
        self._led_pins = dict(zip(LED_CHANNELS, _ints(section.get("led_pins", "5,6,19,26"))))
        self._tach_pin = int(section.get("tach_pin", 25))
        self._vref = float(section.get("adc_vref", 4.096))
        self._temp_channel = int(section.get("temperature_adc_channel", 5))
        self._pwms: dict[object, object] = {}
        self._duty: dict[object, float] = {}
        for channel, pin in self._pwm_pins.items():
            GPIO.setup(pin, GPIO.OUT)
            hz = float(section.get(f"pwm_hz_{channel}", section.get("pwm_hz", 200)))
            self._pwms[channel] = GPIO.PWM(pin, hz)
            self._pwms[channel].start(0)
        for channel, pin in self._led_pins.items():
            GPIO.setup(pin, GPIO.OUT)
            self._pwms[channel] = GPIO.PWM(pin, 1000)
            self._pwms[channel].start(0)
        GPIO.setup(self._tach_pin, GPIO.IN, pull_up_down=GPIO.PUD_UP)
        self._spi = spidev.SpiDev()
        self._spi.open(int(section.get("adc_bus", 0)), int(section.get("adc_device", 0)))
        self._spi.max_speed_hz = 1_000_000
        self._spi_lock = threading.Lock()

    def set_pwm(self, channel: int, duty_cycle: float) -> None:
        if channel not in self._pwm_pins:
            raise HardwareError(f"PWM channel must be one of {tuple(self._pwm_pins)}, got {channel}")
        duty_cycle = check_duty_cycle(duty_cycle)
        self._pwms[channel].ChangeDutyCycle(duty_cycle)  # type: ignore[attr-defined]
        self._duty[channel] = duty_cycle

    def get_pwm(self, channel: int) -> float:
        return self._duty.get(channel, 0.0)

    def set_led(self, channel: str, intensity: float) -> None:
        if channel not in self._led_pins:
            raise HardwareError(f"LED channel must be one of {LED_CHANNELS}, got {channel!r}")
        intensity = check_duty_cycle(intensity)
        self._pwms[channel].ChangeDutyCycle(intensity)  # type: ignore[attr-defined]
        self._duty[channel] = intensity

    def get_leds(self) -> dict[str, float]:
        return {c: self._duty.get(c, 0.0) for c in LED_CHANNELS}

    def _adc_volts(self, channel: int) -> float:
        # MCP3208 single-ended read: start bit, SGL, D2..D0 (channel numbers are 1-based here)
        ch = channel - 1
        with self._spi_lock:
            reply = self._spi.xfer2([0x06 | (ch >> 2), (ch & 0x03) << 6, 0])
        raw = ((reply[1] & 0x0F) << 8) | reply[2]
        return raw * self._vref / 4095.0

    def read_photodiodes(self, channels: tuple[int, ...] = ADC_CHANNELS) -> dict[int, float]:
        return {c: self._adc_volts(c) for c in channels}

    def read_temperature(self) -> float:
        return (self._adc_volts(self._temp_channel) - 0.5) * 100.0

    def measure_rpm(self, duration_s: float = 2.0) -> float:
        edges = 0
        start = time.monotonic()
        last = self.GPIO.input(self._tach_pin)
        while (elapsed := time.monotonic() - start) < duration_s:
            level = self.GPIO.input(self._tach_pin)
            if level != last and level == 0:
                edges += 1
            last = level
            time.sleep(0.0005)
        return edges * 60.0 / elapsed if elapsed > 0 else 0.0
