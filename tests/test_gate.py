"""The reader/writer gate of the engine (fastnn/_gate.pyx): many readers or one
writer, writers first, real waits that wake, and interrupts that leave it whole."""
import random
import signal
import sys
import threading
import time

import pytest

from fastnn._gate import Gate

TIMEOUT = 10.0


def wait_for(condition, what):
    """Poll condition() until it holds (the other thread got there), or fail."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1e-3)


def in_thread(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_readers_share_the_gate_and_a_writer_has_it_alone():
    gate = Gate()
    gate.read_begin()
    gate.read_begin()  # a second reader does not wait for the first
    assert gate.state == (2, False, 0, 0)
    gate.read_end()
    gate.read_end()
    gate.write_begin()
    assert gate.state == (0, True, 0, 0)
    gate.write_end()
    assert gate.state == (0, False, 0, 0)


def test_a_writer_waits_for_the_running_reader_and_new_readers_wait_for_it():
    gate, order = Gate(), []
    gate.read_begin()  # the running reader: this thread

    def writer():
        gate.write_begin()
        order.append("write")
        gate.write_end()

    def late_reader():
        gate.read_begin()
        order.append("read")
        gate.read_end()

    w = in_thread(writer)
    wait_for(lambda: gate.state == (1, False, 1, 1), "the writer to sleep")
    r = in_thread(late_reader)  # arrives while a writer waits: waits too (writers first)
    wait_for(lambda: gate.state[3] == 2, "the late reader to sleep")
    assert order == []
    gate.read_end()  # the last reader out lets the writer in, then the late reader
    w.join(TIMEOUT)
    r.join(TIMEOUT)
    assert order == ["write", "read"]
    assert gate.state == (0, False, 0, 0)


@pytest.fixture
def deadline():
    """A SIGALRM after TIMEOUT seconds raising TimeoutError in the main thread, so that
    a wait that would never end fails the test instead of hanging it."""
    def expire(signum, frame):
        raise TimeoutError("the gate never let this thread in")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def reading_handler(gate, entered):
    """A SIGUSR1 handler that reads (as a handler may predict), noting the gate's state
    inside."""
    def handler(signum, frame):
        gate.read_begin()
        entered.append(gate.state[:3])
        gate.read_end()
    return handler


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_a_handler_reads_while_its_own_thread_waits_to_write(deadline):
    """A writer waits for another thread's reader; a signal handler in the writer's
    thread reads meanwhile: it goes in (its own thread's writer waits for readers,
    and would wait for it in turn), and the writer goes in after the reader."""
    gate, entered, release = Gate(), [], threading.Event()
    previous = signal.signal(signal.SIGUSR1, reading_handler(gate, entered))

    def reader():
        gate.read_begin()
        release.wait(TIMEOUT)
        gate.read_end()

    def signal_the_writer_then_release():
        wait_for(lambda: gate.state == (1, False, 1, 1), "the writer to sleep")
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        wait_for(lambda: entered, "the handler to read")
        release.set()

    try:
        holder = in_thread(reader)
        wait_for(lambda: gate.state[0] == 1, "the reader to enter")
        in_thread(signal_the_writer_then_release)
        gate.write_begin()
        assert entered == [(2, False, 1)]  # beside the reader, its writer waiting
        gate.write_end()
        holder.join(TIMEOUT)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert gate.state == (0, False, 0, 0)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_a_handler_reads_inside_its_own_threads_write_section(deadline):
    """Between two bytecodes of a write section (fit records its history in one) a
    handler's read goes in: its thread's writer is paused, the weights whole. Another
    thread's read still waits for the writer."""
    gate, entered, others = Gate(), [], []
    previous = signal.signal(signal.SIGUSR1, reading_handler(gate, entered))

    def other_reader():
        gate.read_begin()
        others.append(gate.state[:2])
        gate.read_end()

    try:
        gate.write_begin()
        other = in_thread(other_reader)
        wait_for(lambda: gate.state[3] == 1, "the other reader to sleep")
        signal.raise_signal(signal.SIGUSR1)
        assert entered == [(1, True, 0)] and others == []
        gate.write_end()
        other.join(TIMEOUT)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert others == [(1, False)] and gate.state == (0, False, 0, 0)


def test_readers_that_waited_for_a_writer_go_in_before_the_next_writer():
    """A writer that writes again at once (an epoch after an epoch, the GIL held in
    between) first lets in the readers that waited for it; the next writer waits for
    them, not the other way round (a fit cannot starve predictions)."""
    gate, order = Gate(), []
    gate.write_begin()  # the writer: this thread

    def reader(name):
        gate.read_begin()
        order.append(name)
        gate.read_end()

    readers = [in_thread(lambda name=name: reader(name)) for name in ("r1", "r2")]
    wait_for(lambda: gate.state == (0, True, 0, 2), "the readers to sleep")
    gate.write_end()
    gate.write_begin()  # waits for both readers to have been in
    order.append("write")
    gate.write_end()
    for thread in readers:
        thread.join(TIMEOUT)
    assert sorted(order[:2]) == ["r1", "r2"] and order[2] == "write"
    assert gate.state == (0, False, 0, 0)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_a_handler_writes_while_its_own_thread_waits_to_read(deadline):
    """A thread waits to read behind a writer; its signal handler writes (assign,
    an epoch) and waits for that writer, whose end admits the thread's own waiting
    read: the handler's write does not wait for it (it could only go in after the
    handler returns)."""
    gate, done = Gate(), []

    def handler(signum, frame):
        gate.write_begin()
        done.append("handler wrote")
        gate.write_end()

    def writer():
        gate.write_begin()
        wait_for(lambda: gate.state == (0, True, 0, 1), "the reader to sleep")
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        wait_for(lambda: gate.state[2] == 1, "the handler's writer to wait")
        gate.write_end()  # admits the main thread's read, suspended below its handler

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        other = in_thread(writer)
        gate.read_begin()
        done.append("read")
        gate.read_end()
        other.join(TIMEOUT)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert done == ["handler wrote", "read"] and gate.state == (0, False, 0, 0)


def test_a_thread_writing_cannot_begin_another_write():
    """A signal handler's write inside its own thread's write section would wait for
    itself: refused, the section left as it was."""
    gate = Gate()
    gate.write_begin()
    with pytest.raises(RuntimeError, match="this thread is already changing the model"):
        gate.write_begin()
    assert gate.state == (0, True, 0, 0)
    gate.write_end()
    assert gate.state == (0, False, 0, 0)


def test_writers_take_turns():
    gate, inside, most = Gate(), [0], [0]

    def writer():
        for _ in range(200):
            gate.write_begin()
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0)  # let the others try to enter now
            inside[0] -= 1
            gate.write_end()

    threads = [in_thread(writer) for _ in range(4)]
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert most[0] == 1
    assert gate.state == (0, False, 0, 0)


def test_mixed_readers_and_writers_never_overlap_and_all_finish():
    """Random readers and writers: a reader never sees a writer inside, writers are
    alone, and every thread finishes (no lost wake-up, no deadlock)."""
    gate, lock = Gate(), threading.Lock()
    inside = {"readers": 0, "writers": 0}
    violations = []

    def enter(kind):
        with lock:
            inside[kind] += 1
            if inside["writers"] > 1 or (inside["writers"] and inside["readers"]):
                violations.append(dict(inside))

    def leave(kind):
        with lock:
            inside[kind] -= 1

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(300):
            if rng.random() < 0.3:
                gate.write_begin()
                enter("writers")
                time.sleep(0)
                leave("writers")
                gate.write_end()
            else:
                gate.read_begin()
                enter("readers")
                time.sleep(0)
                leave("readers")
                gate.read_end()

    threads = [in_thread(lambda seed=seed: worker(seed)) for seed in range(6)]
    for thread in threads:
        thread.join(TIMEOUT * 3)
    assert not any(thread.is_alive() for thread in threads), "a thread never got in"
    assert violations == []
    assert gate.state == (0, False, 0, 0)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_an_interrupted_writer_leaves_the_gate_whole_and_wakes_the_readers_it_held():
    gate, entered = Gate(), []
    release = threading.Event()

    def reader():  # holds the gate until told
        gate.read_begin()
        release.wait(TIMEOUT)
        gate.read_end()

    def late_reader():
        gate.read_begin()
        entered.append("late")
        gate.read_end()

    holder = in_thread(reader)
    wait_for(lambda: gate.state[0] == 1, "the reader to enter")
    waiter = []

    def start_late_reader_then_interrupt():
        wait_for(lambda: gate.state[2] == 1, "the writer to wait")
        waiter.append(in_thread(late_reader))
        wait_for(lambda: gate.state[3] == 2, "the late reader to sleep")
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # Ctrl-C

    in_thread(start_late_reader_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        gate.write_begin()  # interrupted while waiting for the reader
    assert gate.state[:3] == (1, False, 0)  # the reader still holds it: not let in
    # The writer never entered; the late reader, held back only by it, gets in.
    waiter[0].join(TIMEOUT)
    assert entered == ["late"]
    release.set()
    holder.join(TIMEOUT)
    assert gate.state == (0, False, 0, 0)
    gate.write_begin()  # and the gate still works
    gate.write_end()
