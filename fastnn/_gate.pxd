# The reader/writer gate of an engine: see _gate.pyx.

cdef class Gate:
    cdef int readers            # read sections in progress
    cdef bint writing           # a write section is in progress
    cdef int writers_waiting    # write sections waiting for their turn
    cdef list sleepers          # a held lock per sleeping thread, released to wake it
    cdef unsigned long writer   # the writing thread's ident (while writing)
    cdef int admitted           # read sections the last writer's end let go first
    cdef dict waiting_readers   # thread ident -> its read sections waiting,
    cdef dict waiting_writers   # ... its write sections waiting,
    cdef dict admitted_of       # ... its read sections admitted

    cpdef read_begin(self)
    cpdef read_end(self)
    cpdef write_begin(self)
    cpdef write_end(self)
    cdef int _sleep(self) except -1
    cdef void _wake(self) noexcept
    cdef bint _reader_waits(self, unsigned long me)
    cdef bint _writer_waits(self, unsigned long me)
