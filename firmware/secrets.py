"""Secrets a visit handles (PIN digits, 照合番号B) in buffers that can be zeroed and never print.

A Python ``str`` or ``bytes`` cannot be wiped, and an event's keyword arguments are kept alive by
the state-machine library in its trigger data, so secrets never travel as either: the session
holds a :class:`SecretBuffer`, screens append digits to it through the flow thread, and the card
layer reads it only to build the one VERIFY APDU. :meth:`SecretBuffer.wipe` zeroes it in place.
"""

from __future__ import annotations


class SecretBuffer:
    """A fixed-capacity bytearray of ASCII digits that refuses to be printed, compared or pickled."""

    __slots__ = ("_buffer", "_length")

    def __init__(self, capacity: int):
        self._buffer = bytearray(capacity)
        self._length = 0

    @property
    def capacity(self) -> int:
        return len(self._buffer)

    def __len__(self) -> int:
        return self._length

    @property
    def full(self) -> bool:
        return self._length == len(self._buffer)

    def append_digit(self, digit: int) -> None:
        """Add one digit 0-9; raises ValueError when full or not a digit (the digit is not named)."""
        if not isinstance(digit, int) or not 0 <= digit <= 9:
            raise ValueError("a secret takes digits 0-9 only")
        if self.full:
            raise ValueError(f"the secret already has its {self.capacity} digits")
        self._buffer[self._length] = 0x30 + digit
        self._length += 1

    def backspace(self) -> None:
        if self._length:
            self._length -= 1
            self._buffer[self._length] = 0

    def view(self) -> memoryview:
        """The digits so far, as a read-only view (no copy: the caller must not keep it)."""
        return memoryview(self._buffer)[: self._length].toreadonly()

    def wipe(self) -> None:
        """Zero every byte in place."""
        self._buffer[:] = bytes(len(self._buffer))
        self._length = 0

    def is_zero(self) -> bool:
        return not any(self._buffer)

    def __repr__(self) -> str:
        return f"<SecretBuffer {self._length}/{self.capacity} digits>"

    __str__ = __repr__

    def __eq__(self, other) -> bool:  # a comparison would be a timing oracle and a way to leak
        return self is other

    __hash__ = object.__hash__

    def __reduce__(self):
        raise TypeError("a SecretBuffer cannot be pickled")
