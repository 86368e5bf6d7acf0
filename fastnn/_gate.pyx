# cython: language_level=3
"""The reader/writer gate that keeps a model's weights whole under threads.

Any number of readers (predictions, losses, gradients) may run at once; a writer (a
training step, an assignment of the weights) runs alone. A writer that arrives
waits for the running readers to finish and turns away the new ones until it is
done (writers first), so a stream of predictions cannot starve training, and no
reader ever sees half-updated weights.

The counters change only while the calling thread holds the GIL, and every test of
them and the entry that follows run in C with no Python code between, so they
cannot race and no Ctrl-C can fall between a test and an entry. A thread that must
wait sleeps on a lock of its own (the GIL is released meanwhile), which the section
that ends releases to wake it: no polling, no lost wake-up (a lock released before
its owner sleeps on it lets the owner through at once). A thread that need not wait
touches no lock at all, which keeps an uncontended call as cheap as two integer
updates. Ctrl-C while sleeping raises KeyboardInterrupt from the begin call, which
then has not entered and leaves the gate as if the thread had never come.

Signal handlers run in the thread they interrupt, also while it waits here or
writes. A reader nested so in its own thread never waits for that thread: it goes
in while its thread writes (paused between two bytecodes, the weights whole) and does
not count its thread's own waiting writers (which would wait for it in turn). A
writer nested in its own thread's write section is refused (RuntimeError).
"""
from cpython.pythread cimport PyThread_get_thread_ident
from _thread import allocate_lock


cdef class Gate:
    """Many readers or one writer; writers first.

    Use ``read_begin()``/``read_end()`` and ``write_begin()``/``write_end()`` in pairs,
    the end in a ``finally``. A begin call interrupted while it waits raises and has
    not entered.
    """

    def __cinit__(self):
        self.sleepers = []
        self.waiting_writers = {}

    cpdef read_begin(self):
        """Enter a read section: wait while a writer runs or waits (another thread's:
        see the module's docstring)."""
        cdef unsigned long me
        if self.writing or self.writers_waiting:
            me = PyThread_get_thread_ident()
            while (self.writing and self.writer != me) or (
                    self.writers_waiting > self.waiting_writers.get(me, 0)):
                self._sleep()
        self.readers += 1

    cpdef read_end(self):
        """Leave a read section; the last reader out lets a waiting writer in."""
        self.readers -= 1
        if self.readers == 0:
            self._wake()

    cpdef write_begin(self):
        """Enter the write section: wait for the running writer and readers.
        RuntimeError from a signal handler whose own thread is writing (it would wait
        for itself forever)."""
        cdef unsigned long me = PyThread_get_thread_ident()
        if self.writing and self.writer == me:
            raise RuntimeError("this thread is already changing the model: a signal "
                               "handler may read it (predict, save) but not change it "
                               "while the code it interrupted does")
        if self.writing or self.readers:
            self.writers_waiting += 1
            self.waiting_writers[me] = self.waiting_writers.get(me, 0) + 1
            try:
                while self.writing or self.readers:
                    self._sleep()
            except BaseException:
                self._stop_waiting(me)
                self._wake()  # the readers this writer held back test again
                raise
            self._stop_waiting(me)
        self.writing = True
        self.writer = me

    cdef void _stop_waiting(self, unsigned long me) noexcept:
        """A writer of thread me waits no longer (it goes in, or gives up)."""
        self.writers_waiting -= 1
        if self.waiting_writers[me] == 1:
            del self.waiting_writers[me]
        else:
            self.waiting_writers[me] -= 1

    cpdef write_end(self):
        """Leave the write section and let the waiting threads test again."""
        self.writing = False
        self._wake()

    cdef int _sleep(self) except -1:
        """Sleep until the next _wake: on a lock taken here and put in `sleepers`,
        taken a second time (GIL released) until _wake releases it."""
        lock = allocate_lock()
        lock.acquire()
        self.sleepers.append(lock)
        try:
            lock.acquire()
        except BaseException:  # interrupted: no longer sleeping
            if lock in self.sleepers:
                self.sleepers.remove(lock)
            raise
        return 0

    cdef void _wake(self) noexcept:
        """Wake every sleeping thread; each tests again whether it may enter."""
        if self.sleepers:
            sleepers, self.sleepers = self.sleepers, []
            for lock in sleepers:
                lock.release()

    @property
    def state(self):
        """(readers, writing, writers waiting, threads sleeping): for tests."""
        return (self.readers, bool(self.writing), self.writers_waiting,
                len(self.sleepers))
