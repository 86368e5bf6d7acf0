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

When a writer ends, the readers waiting then are admitted: they go in before the
next writer, so a stream of writes (a fit's epochs) cannot starve predictions either.

Signal handlers run in the thread they interrupt, also while it waits here or
writes. A call nested so never waits for its own thread: a reader goes in while its
thread writes (paused between two bytecodes, the weights whole) and does not count
its thread's own waiting writers; a writer does not wait for its thread's own
admitted reader. A writer nested in its own thread's write section is refused
(RuntimeError).
"""
from cpython.pythread cimport PyThread_get_thread_ident
from _thread import allocate_lock


cdef void _count(dict counts, unsigned long me, int change):
    """counts[me] += change, the entry gone at 0."""
    cdef int n = counts.get(me, 0) + change
    if n:
        counts[me] = n
    else:
        counts.pop(me, None)


cdef class Gate:
    """Many readers or one writer; writers first, then the readers that waited for
    them.

    Use ``read_begin()``/``read_end()`` and ``write_begin()``/``write_end()`` in pairs,
    the end in a ``finally``. A begin call interrupted while it waits raises and has
    not entered.
    """

    def __cinit__(self):
        self.sleepers = []
        self.waiting_readers, self.waiting_writers, self.admitted_of = {}, {}, {}

    cpdef read_begin(self):
        """Enter a read section: wait while a writer runs or waits (another thread's:
        see the module's docstring), unless the readers admitted by the last writer's
        end are going in (then with them)."""
        cdef unsigned long me
        if self.writing or self.writers_waiting:
            me = PyThread_get_thread_ident()
            if self._reader_waits(me):
                _count(self.waiting_readers, me, 1)
                try:
                    while self._reader_waits(me):
                        self._sleep()
                finally:  # going in, or interrupted: no longer waiting
                    _count(self.waiting_readers, me, -1)
                    if self.admitted_of.get(me, 0):
                        _count(self.admitted_of, me, -1)
                        self.admitted -= 1
                        if not self.admitted:
                            self._wake()  # the writers that let these readers first
        self.readers += 1

    cdef bint _reader_waits(self, unsigned long me):
        return (self.writing and self.writer != me) or (
            self.writers_waiting > self.waiting_writers.get(me, 0) and not self.admitted)

    cpdef read_end(self):
        """Leave a read section; the last reader out lets a waiting writer in."""
        self.readers -= 1
        if self.readers == 0:
            self._wake()

    cpdef write_begin(self):
        """Enter the write section: wait for the running writer and readers, and for
        the readers the last writer's end admitted (not this thread's own, nested
        below a signal handler). RuntimeError from a signal handler whose own thread
        is writing (it would wait for itself forever)."""
        cdef unsigned long me = PyThread_get_thread_ident()
        if self.writing and self.writer == me:
            raise RuntimeError("this thread is already changing the model: a signal "
                               "handler may read it (predict, save) but not change it "
                               "while the code it interrupted does")
        if self._writer_waits(me):
            self.writers_waiting += 1
            _count(self.waiting_writers, me, 1)
            try:
                while self._writer_waits(me):
                    self._sleep()
            except BaseException:
                self._wake()  # the readers this writer held back test again (once
                raise         # the GIL is let go, after the finally)
            finally:
                self.writers_waiting -= 1
                _count(self.waiting_writers, me, -1)
        self.writing = True
        self.writer = me

    cdef bint _writer_waits(self, unsigned long me):
        return self.writing or self.readers or (
            self.admitted and self.admitted > self.admitted_of.get(me, 0))

    cpdef write_end(self):
        """Leave the write section, admitting the readers waiting now (they go in
        before the next writer: a fit that writes epoch after epoch cannot starve
        them), and let the waiting threads test again."""
        self.writing = False
        if self.waiting_readers or self.admitted_of:  # (no dict made when none wait)
            self.admitted_of = dict(self.waiting_readers)
            self.admitted = sum(self.admitted_of.values())
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
