# The reader/writer gate of an engine: see _gate.pyx.

cdef class Gate:
    cdef int readers            # read sections in progress
    cdef bint writing           # a write section is in progress
    cdef int writers_waiting    # write sections waiting for their turn
    cdef list sleepers          # a held lock per sleeping thread, released to wake it
    cdef unsigned long writer   # the writing thread's ident (while writing)
    cdef dict waiting_writers   # thread ident -> its write sections waiting

    cpdef read_begin(self)
    cpdef read_end(self)
    cpdef write_begin(self)
    cpdef write_end(self)
    cdef int _sleep(self) except -1
    cdef void _wake(self) noexcept
    cdef void _stop_waiting(self, unsigned long me) noexcept
