# cython: language_level=3
"""The reader/writer gate that keeps a model's weights whole under threads.

Any number of readers (predictions, losses, gradients) may run at once; a writer (a
training step, an assignment of the weights) runs alone. A writer that arrives
waits for the running readers to finish and turns away the new ones until it is
done (writers first), so a stream of predictions cannot starve training, and no
reader ever sees half-updated weights.

The counters change only while the calling thread holds the GIL, and each test of
them is made together with its change, in C with no Python call between, so they
cannot race. A thread that must wait blocks on a threading.Condition (the GIL is
released while it sleeps) and is woken by the section that lets it in; a thread
that need not wait touches no lock at all, which keeps the uncontended call as
cheap as two integer updates.
"""
import threading


cdef class Gate:
    """Many readers or one writer; writers first.

    Use ``read_begin()``/``read_end()`` and ``write_begin()``/``write_end()`` in pairs,
    the end in a ``finally``. Waiting can be interrupted (KeyboardInterrupt); the
    begin call then raises and the section was not entered.
    """

    def __cinit__(self):
        self.condition = threading.Condition(threading.Lock())

    cpdef read_begin(self):
        """Enter a read section: wait while a writer runs or waits."""
        if self.writing or self.writers_waiting:
            self._wait(False)
        else:
            self.readers += 1

    cpdef read_end(self):
        """Leave a read section; the last reader out lets a waiting writer in."""
        self.readers -= 1
        if self.readers == 0 and self.sleeping:
            self._wake()

    cpdef write_begin(self):
        """Enter the write section: wait for the running writer and readers."""
        if not (self.writing or self.readers):
            self.writing = True
            return
        self.writers_waiting += 1
        try:
            self._wait(True)
        finally:
            self.writers_waiting -= 1
            if self.sleeping:  # readers held back by this writer test again
                self._wake()

    cpdef write_end(self):
        """Leave the write section and let the waiting threads try again."""
        self.writing = False
        if self.sleeping:
            self._wake()

    cdef int _wait(self, bint writer) except -1:
        """Sleep on the condition until this thread may enter, then enter. `sleeping`
        is raised (under the condition's lock) before the state is tested, so a
        section that ends after the test sees it and wakes this thread once it
        waits; the last test and the entry run in C with no Python call between, so
        no other thread can enter in between."""
        with self.condition:
            self.sleeping += 1
            try:
                while self.writing or (self.readers if writer
                                       else self.writers_waiting):
                    self.condition.wait()
                if writer:
                    self.writing = True
                else:
                    self.readers += 1
            finally:
                self.sleeping -= 1
        return 0

    cdef void _wake(self) noexcept:
        """Wake every sleeping thread; each tests again whether it may enter."""
        try:
            with self.condition:
                self.condition.notify_all()
        except BaseException:  # an interrupt while taking the lock: the sleepers
            pass               # are woken by the next section that ends

    @property
    def state(self):
        """(readers, writing, writers waiting, threads sleeping): for tests."""
        return self.readers, bool(self.writing), self.writers_waiting, self.sleeping
