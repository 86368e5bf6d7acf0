# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""The whole-network engine: an MLP's flat parameters, the plan to walk them, and
the training step, predictions, losses and gradients, each one compiled call.

params holds, layer after layer, W (n_out, n_in) then b (n_out,); gradients and the
optimizer's state arrays share that layout. The Plan owns every offset: where each
layer's W and b start, and where its Z and A sit in a workspace of m rows. A training
step (forward through every layer, fused output+loss, backward, update) runs with
the GIL released on a workspace that grows only when a larger batch arrives.
"""

cimport numpy as cnp
from cython cimport floating
import threading

import numpy as np
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.float cimport DBL_MIN, FLT_MIN
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY, NAN, isfinite
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_GetPointer
from cpython.ref cimport Py_INCREF, PyObject
from numpy.random cimport bitgen_t
from numpy.random.c_distributions cimport random_interval
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from scipy.linalg.cython_blas cimport dgemm as _scipy_dgemm

from fastnn._gate cimport Gate
from fastnn._kernels import _nonfinite_message
from fastnn._ops cimport (FNN_ADAM_PERIOD, IDENTITY, MAX_HYPER, MAX_STATES, NARROW_BYTES,
                          NARROW_MIN, OUT_SOFTMAX, Optim, _activation_grad_sums,
                          _add_into, _column_sums, _dense_backward, _dense_forward,
                          _first_nonfinite, _narrow_dense_backward, _narrow_dense_forward,
                          _optimizer_reads, _output_activation, _output_loss,
                          _row_stride, _scratch_bytes, _sum_squares, _transpose, _update,
                          fnn_flush_subnormals, fnn_fp_mode, fnn_fp_restore,
                          fnn_vector_build, fnn_adam_divide, intp)

cnp.import_array()
fnn_vector_build()  # settles the vector build and Adam's division at import, before
fnn_adam_divide()   # any thread can ask


# ---------------------------------------------------------------- the plan

cdef struct Plan:
    intp n_layers
    intp* sizes        # n_layers + 1 widths, input first
    int* acts          # n_layers codes; the output layer's is IDENTITY (logits)
    int output         # OUT_SIGMOID, OUT_SOFTMAX or OUT_IDENTITY
    double slope       # leaky_relu's negative slope
    intp* at           # n_layers + 1: where layer l's W starts in params (its b follows
                       # its W); at[n_layers] is the number of parameters
    intp* rows_at      # n_layers + 1: where layer l's Z starts in the workspace, per
                       # batch row (its A follows its Z); rows_at[n_layers]: all of them
    intp max_width     # widest layer after the input
    size_t scratch_bytes  # the most _scratch_bytes of a layer: room after the
                          # workspace's arrays for fnn_gemm's packing or a copy of W^T
    bint narrow        # all widths <= NARROW_BYTES: batches of NARROW_MIN or more go
                       # feature-major


cdef int _plan_build(Plan* plan, sizes, activations, int output, double slope,
                     intp itemsize) except -1:
    """Fill a zeroed plan; the one place where layer offsets are computed."""
    cdef intp l, L = len(sizes) - 1
    plan.n_layers = L
    plan.sizes = <intp*> malloc((L + 1) * sizeof(intp))
    plan.acts = <int*> malloc(L * sizeof(int))
    plan.at = <intp*> malloc((L + 1) * sizeof(intp))
    plan.rows_at = <intp*> malloc((L + 1) * sizeof(intp))
    if not (plan.sizes and plan.acts and plan.at and plan.rows_at):
        raise MemoryError()
    for l in range(L + 1):
        if not 1 <= sizes[l] <= INT_MAX:
            raise ValueError(f"layer widths must be in [1, 2**31 - 1]; got {sizes[l]}")
        plan.sizes[l] = sizes[l]
    plan.at[0] = plan.rows_at[0] = plan.max_width = 0
    for l in range(L):
        plan.acts[l] = activations[l]
        plan.at[l + 1] = plan.at[l] + plan.sizes[l + 1] * (plan.sizes[l] + 1)
        plan.rows_at[l + 1] = plan.rows_at[l] + 2 * plan.sizes[l + 1]
        plan.max_width = max(plan.max_width, plan.sizes[l + 1])
        plan.scratch_bytes = max(plan.scratch_bytes,
                                 _scratch_bytes(plan.sizes[l], plan.sizes[l + 1], itemsize))
    plan.output = output
    plan.slope = slope
    plan.narrow = max(sizes) * itemsize <= NARROW_BYTES
    return 0


cdef void _plan_free(Plan* plan) noexcept:
    free(plan.sizes)
    free(plan.acts)
    free(plan.at)
    free(plan.rows_at)


cdef inline intp _work_size(const Plan* plan, intp stride) noexcept nogil:
    """Workspace for a batch whose arrays have the row stride `stride` (_stride): Z and
    A of every layer, two gradient buffers dz and other, and for narrow plans the
    transposed input."""
    return (stride * plan.rows_at[plan.n_layers] + 2 * stride * plan.max_width
            + (stride * plan.sizes[0] if plan.narrow else 0))


cdef inline bint _feature_major(const Plan* plan, intp m) noexcept nogil:
    return plan.narrow and m >= NARROW_MIN


cdef inline intp _stride(const Plan* plan, intp m, size_t itemsize) noexcept nogil:
    """The stride of the workspace's arrays for a batch of m: feature-major rows are
    padded to whole 64-byte lines (_row_stride; the workspace starts on one, see
    _aligned_malloc); in the samples-are-rows layout, m (the arrays are (m, width))."""
    return _row_stride(m, itemsize) if _feature_major(plan, m) else m


cdef void* _aligned_malloc(size_t nbytes) noexcept nogil:
    """nbytes starting at a multiple of 64 bytes (NULL when there is no memory), for
    _aligned_free: the pointer malloc gave is kept just before them."""
    cdef char* raw = <char*> malloc(nbytes + 64)
    if raw == NULL:
        return NULL
    cdef char* start = raw + 64 - (<size_t> raw) % 64  # malloc aligns to 8 or more
    (<void**> start - 1)[0] = raw
    return start


cdef void _aligned_free(void* start) noexcept nogil:
    if start != NULL:
        free((<void**> start - 1)[0])


# ---------------------------------------------------------------- the network

cdef const floating* _forward(const Plan* plan, const floating* params,
                              const floating* x, intp m, floating* work) noexcept nogil:
    """Every layer's Z and A into work; the output layer's Z holds the logits and its
    A is left for the output function. Feature-major for narrow plans (see _ops.pxd),
    which skip the Z that the backward pass does not read. Returns the network's
    input as the backward pass reads it: x, or its transpose in the workspace."""
    cdef intp l, n_in, n_out
    cdef bint fm = _feature_major(plan, m)
    cdef intp s = _stride(plan, m, sizeof(floating))
    cdef const floating* a_prev = x
    cdef const floating* w
    cdef floating* z
    cdef floating* a
    cdef floating* transposed
    if fm:  # the input's transpose, at the end of the workspace
        transposed = work + _work_size(plan, s) - s * plan.sizes[0]
        _transpose(x, transposed, m, plan.sizes[0], plan.sizes[0], s)
        a_prev = transposed
    cdef const floating* inputs = a_prev
    for l in range(plan.n_layers):
        n_in, n_out = plan.sizes[l], plan.sizes[l + 1]
        w, z = params + plan.at[l], work + s * plan.rows_at[l]
        # the output layer's A is its Z: the logits, which the output function reads
        a = z + s * n_out if l + 1 < plan.n_layers else z
        if fm:
            _narrow_dense_forward(a_prev, w, w + n_out * n_in, z, a, m, s, n_in, n_out,
                                  plan.acts[l], <floating> plan.slope)
        else:  # the scratch after the workspace's arrays (_work_bytes)
            _dense_forward(a_prev, w, w + n_out * n_in, z, a, m, n_in, n_out,
                           plan.acts[l], <floating> plan.slope, work + _work_size(plan, s))
        a_prev = a
    return inputs


cdef enum:
    SQUARES_CHUNKS = 64  # the penalty's sum of squares in at most this many chunks
    SQUARES_MIN = 4096   # of at least this many parameters (a plan's fixed split)


cdef intp _squares_chunk(const Plan* plan) noexcept nogil:
    """The parameters in each chunk of the penalty's sum (_chunk_squares), which
    depends on the plan alone, so that the sum's bits do not depend on the threads."""
    cdef intp n = plan.at[plan.n_layers]
    return max(<intp> SQUARES_MIN, (n + SQUARES_CHUNKS - 1) // SQUARES_CHUNKS)


cdef double _chunk_squares(const Plan* plan, const floating* params,
                           intp c) noexcept nogil:
    """sum of w^2 over the weights (biases excluded) among chunk c of params, the
    parameters [c size, (c + 1) size) for size = _squares_chunk: each layer's part in
    double (_sum_squares), added in layer order."""
    cdef intp size = _squares_chunk(plan), l, n
    cdef intp lo = c * size, hi = lo + size
    cdef double total = 0
    for l in range(plan.n_layers):
        n = min(hi, plan.at[l] + plan.sizes[l + 1] * plan.sizes[l]) - max(lo, plan.at[l])
        if n > 0:  # some weights of this layer in the chunk
            total += _sum_squares(params + max(lo, plan.at[l]), n)
    return total


cdef inline intp _squares_chunks(const Plan* plan) noexcept nogil:
    """The number of chunks of the penalty's sum (at most SQUARES_CHUNKS)."""
    cdef intp size = _squares_chunk(plan)
    return (plan.at[plan.n_layers] + size - 1) // size


cdef double _penalty_of(const double* chunk_squares, intp chunks, double wd) noexcept nogil:
    """0.5 wd sum ||W||^2 from the chunks' sums (_chunk_squares), added in chunk order."""
    cdef double squares = 0
    cdef intp c
    for c in range(chunks):
        squares += chunk_squares[c]
    return 0.5 * wd * squares


cdef double _penalty(const Plan* plan, const floating* params, double wd) noexcept nogil:
    """The L2 penalty 0.5 wd sum ||W||^2 (0 when wd is 0, without the sum), from the
    chunks' sums as a team's step has them (_penalty_of)."""
    cdef double chunk_squares[SQUARES_CHUNKS]
    cdef intp c, chunks = _squares_chunks(plan)
    if wd == 0:
        return 0
    for c in range(chunks):
        chunk_squares[c] = _chunk_squares(plan, params, c)
    return _penalty_of(chunk_squares, chunks, wd)


cdef bint _backward(const Plan* plan, const floating* params, floating* grads,
                    const floating* inputs, intp m, floating* work,
                    bint check) noexcept nogil:
    """Every layer's gradient into grads, from the output layer's dZ in the workspace
    (its two gradient buffers take turns). With check, returns whether a gradient is
    not finite (tested layer by layer, while still in cache)."""
    cdef intp l, n_in, n_out
    cdef bint fm = _feature_major(plan, m)
    cdef intp s = _stride(plan, m, sizeof(floating))
    cdef floating* dz = work + s * plan.rows_at[plan.n_layers]
    cdef floating* other = dz + s * plan.max_width
    cdef floating* z_prev = NULL
    cdef const floating* a_prev
    cdef bint bad = False
    for l in range(plan.n_layers - 1, -1, -1):
        n_in, n_out = plan.sizes[l], plan.sizes[l + 1]
        a_prev = inputs
        if l > 0:
            z_prev = work + s * plan.rows_at[l - 1]
            a_prev = z_prev + s * n_in
        if fm:  # other = dZ of layer l - 1 at once
            _narrow_dense_backward(dz, a_prev, params + plan.at[l], grads + plan.at[l],
                                   grads + plan.at[l] + n_out * n_in,
                                   other if l > 0 else NULL, z_prev,
                                   plan.acts[l - 1] if l > 0 else IDENTITY,
                                   <floating> plan.slope, m, s, n_in, n_out)
        else:  # db of the output layer, and of the others with their dZ (below)
            if l == plan.n_layers - 1:
                _column_sums(dz, grads + plan.at[l] + n_out * n_in, m, n_out)
            _dense_backward(dz, a_prev, params + plan.at[l], grads + plan.at[l],
                            other if l > 0 else NULL, m, n_in, n_out,
                            work + _work_size(plan, s))
            if l > 0:
                _activation_grad_sums(other, z_prev, a_prev, other,
                                      grads + plan.at[l - 1] + n_in * plan.sizes[l - 1],
                                      m, n_in, plan.acts[l - 1], <floating> plan.slope)
        if check and not bad:
            bad = _first_nonfinite(grads + plan.at[l], plan.at[l + 1] - plan.at[l],
                                   sizeof(floating) == 4) >= 0
        dz, other = other, dz
    return bad


cdef bint _apply(const Plan* plan, const Optim* opt, floating* params,
                 const floating* grads, floating** states, intp lo, intp hi) noexcept nogil:
    """The optimizer's update of params[lo:hi] (weight decay on W, not b); returns
    whether it overflowed one of them."""
    cdef intp l, at, b, end, first, last
    cdef bint overflowed = False
    for l in range(plan.n_layers):
        at, end = plan.at[l], plan.at[l + 1]
        b = at + plan.sizes[l + 1] * plan.sizes[l]  # where the layer's b starts
        first, last = max(lo, at), min(hi, b)
        if first < last:
            overflowed |= _update(opt, params + first, grads + first, states, first,
                                  last - first, opt.weight_decay)
        first, last = max(lo, b), min(hi, end)
        if first < last:
            overflowed |= _update(opt, params + first, grads + first, states, first,
                                  last - first, 0)
    return overflowed


cdef struct Batch:
    const void* x         # (m, n_in) samples
    const void* y         # (m, k) float targets, or NULL with labels
    const intp* labels    # (m,) class labels (softmax), or NULL
    const void* w         # (m,) row weights, or NULL
    double norm           # the sum of w (> 0), or m without weights
    intp m


cdef void _add_decay(const Plan* plan, const floating* params, floating* grads,
                     double wd) noexcept nogil:
    """grads of every W += wd W: the gradient of 0.5 wd sum ||W||^2."""
    cdef intp l, i
    for l in range(plan.n_layers):
        for i in range(plan.at[l], plan.at[l] + plan.sizes[l + 1] * plan.sizes[l]):
            grads[i] += (<floating> wd) * params[i]


cdef double _forward_loss(const Plan* plan, const floating* params, const Batch* batch,
                          floating* work, const floating** inputs) noexcept nogil:
    """Forward and the loss on the batch's rows, sum_i w_i l_i / norm (no penalty); the
    output layer's dZ into the workspace, and in *inputs the network's input as the
    backward pass reads it."""
    cdef intp L = plan.n_layers, k = plan.sizes[L], m = batch.m
    cdef intp s = _stride(plan, m, sizeof(floating))
    cdef floating* logits = work + s * plan.rows_at[L - 1]
    cdef floating* dz = work + s * plan.rows_at[L]
    cdef const floating* y = <const floating*> batch.y
    cdef const floating* w = <const floating*> batch.w
    cdef double loss
    inputs[0] = _forward(plan, params, <const floating*> batch.x, m, work)
    if _feature_major(plan, m) and k > 1:  # the output kernels read rows: logits to
        _transpose(logits, dz + s * plan.max_width, k, m, s, k)  # rows, dZ back
        loss = _output_loss(plan.output, dz + s * plan.max_width, y, batch.labels, w,
                            batch.norm, logits + s * k, logits, m, k)
        _transpose(logits, dz, m, k, k, s)
    else:  # (k = 1: the two layouts are the same memory)
        loss = _output_loss(plan.output, logits, y, batch.labels, w, batch.norm,
                            logits + s * k, dz, m, k)
    return loss


cdef double _loss_grads(const Plan* plan, const floating* params, floating* grads,
                        const Batch* batch, floating* work, double wd,
                        bint backward) noexcept nogil:
    """The loss (as _forward_loss) plus the L2 penalty of wd (_penalty) and, with
    backward, its gradient into grads."""
    cdef const floating* inputs
    cdef double loss = _forward_loss(plan, params, batch, work, &inputs) \
        + _penalty(plan, params, wd)
    if backward:
        _backward(plan, params, grads, inputs, batch.m, work, False)
        if wd != 0:
            _add_decay(plan, params, grads, wd)
    return loss


cdef void _predict(const Plan* plan, const floating* params, const floating* x, intp m,
                   floating* work, floating* out) noexcept nogil:
    """out = the network's output: probabilities (sigmoid, softmax) or values."""
    cdef intp k = plan.sizes[plan.n_layers]
    cdef intp s = _stride(plan, m, sizeof(floating))
    cdef floating* logits = work + s * plan.rows_at[plan.n_layers - 1]
    _forward(plan, params, x, m, work)
    if _feature_major(plan, m) and k > 1:
        _transpose(logits, out, k, m, s, k)  # then in place: the output functions allow it
        logits = out
    _output_activation(plan.output, logits, out, m, k)


cdef double _run(const Plan* plan, bint single, const void* params, void* grads,
                 const Batch* batch, void* work, double wd, bint backward,
                 void* out) noexcept nogil:
    """_loss_grads, or _predict of batch.x when out is not NULL, in the model's dtype,
    with subnormal numbers flushed to zero (fnn_flush_subnormals in _vector.h)."""
    cdef fnn_fp_mode mode = fnn_flush_subnormals()
    cdef double loss = 0
    if single and out != NULL:
        _predict(plan, <const float*> params, <const float*> batch.x, batch.m,
                 <float*> work, <float*> out)
    elif out != NULL:
        _predict(plan, <const double*> params, <const double*> batch.x, batch.m,
                 <double*> work, <double*> out)
    elif single:
        loss = _loss_grads(plan, <const float*> params, <float*> grads, batch,
                           <float*> work, wd, backward)
    else:
        loss = _loss_grads(plan, <const double*> params, <double*> grads, batch,
                           <double*> work, wd, backward)
    fnn_fp_restore(mode)
    return loss


# ---------------------------------------------------------------- training

cdef extern from "_team.h" nogil:
    ctypedef void (*fnn_job)(void* context, int member, int members) noexcept nogil
    void fnn_team_run(int wanted, fnn_job job, void* context, bint blas)
    void fnn_publish(unsigned long long* ticket, unsigned long long gen, long count)
    long fnn_take(unsigned long long* ticket, unsigned long long* gen)
    void fnn_item_done(long* done)
    void fnn_wait_done(long* done, long count)
    unsigned long long fnn_wait_phase(unsigned long long* ticket, unsigned long long gen)
    void fnn_blas_find(const void* blas_function)
    int fnn_blas_limit()
    int fnn_cpu_count()
    void fnn_evict(const void* start, size_t nbytes)

cdef extern from "Python.h":
    int PyErr_CheckSignals()
    void PyErr_Fetch(PyObject** kind, PyObject** value, PyObject** traceback)
    void PyErr_Restore(PyObject* kind, PyObject* value, PyObject* traceback)

fnn_blas_find(<const void*> _scipy_dgemm)  # BLAS's thread controls, found once

cdef enum:
    MAX_PARTS = 64             # n_threads at most (and the team's size)
    PART_MIN_ROWS = 8          # a step is split only into parts of this many rows
    SIGNAL_EVERY_NS = 20000000  # the main thread looks for Ctrl-C this often


# A read (predict, loss, gradients) of at most this many rows x parameters runs
# holding the GIL, in the engine's own workspace: for [64, 64, 64, 10] (8,842 parameters)
# up to 7 rows, work of about a microsecond, where releasing and taking back the GIL
# and allocating a workspace (33 KB with the matrix product's scratch) cost 140 ns of
# a one-sample prediction's 1.15 us.
cdef enum:
    SMALL_READ = 65536

cdef double PART_MIN_FLOPS = 1e6   # ... and of this much matrix-product work


cdef inline int _parts(const Plan* plan, intp m, int n_threads) noexcept nogil:
    """The parts a step on m rows is split into for n_threads: slices of the rows, each
    with its own forward and backward, their gradients summed in part order. It
    depends only on the plan, m and n_threads, never on the threads that run."""
    cdef double flops = 6.0 * m * plan.at[plan.n_layers]
    return <int> max(1, min(<intp> n_threads, m // PART_MIN_ROWS,
                            <intp> (flops / PART_MIN_FLOPS)))


cdef inline intp _part_rows(const Plan* plan, intp m, int n_threads) noexcept nogil:
    """The rows of the largest part of a step on m rows."""
    cdef int parts = _parts(plan, m, n_threads)
    return m - m * (parts - 1) // parts


cdef enum:  # the kinds of a step's phases, each a number of items any member may take
    PHASE_PARTS     # the forward and backward of a part of the batch (item p: part p),
                    # then the penalty's sums of squares (items parts + c: chunk c)
    PHASE_SUM       # the parts' gradients summed in part order, a range of them an item
    PHASE_UPDATE    # the update, a range of the parameters an item
    PHASE_STOP      # the epoch is over


cdef struct Phase:
    int kind
    intp start, mb          # the batch: mb rows from position start
    double norm             # its total weight
    int parts               # the parts it is split into
    Optim opt               # the update's settings for this step


cdef struct Epoch:
    # what the steps read
    const Plan* plan
    bint single
    void* params
    void* grads[MAX_PARTS]  # a gradient buffer per part; grads[0] is the engine's
    void* work[MAX_PARTS]   # a workspace per part
    void** states
    Optim opt               # the update's settings (its t and weight decay per step)
    const void* x           # all the samples (m, n_in), their targets (m, k) or
    const void* y           # labels (m,), their weights (m,) or NULL
    const intp* labels
    const void* w
    const intp* order       # the rows in the epoch's order, or NULL: 0, 1, ..., m - 1
    intp* drawn_order       # the order when the epoch drew it (its buffer), or NULL
    void* x_batch           # with order: the batch gathered, its targets, labels and
    void* y_batch           # weights
    intp* labels_batch
    void* w_batch
    intp m
    intp batch_size
    int n_threads
    bint check_signals
    # the phases of a step, published by member 0 (its generation, gen, in ticket with
    # the phase's count of items and the next item to take; the phase in phases[gen %
    # 2], its items done counted in done[gen % 2]); the items' results below
    unsigned long long ticket
    unsigned long long gen  # the last published (member 0's own copy)
    Phase phases[2]
    long done[2]
    int ranges              # the parameters' ranges, the items of PHASE_SUM and _UPDATE
                            # (1: a team of one)
    # what the items write
    double part_loss[MAX_PARTS]
    bint part_bad[MAX_PARTS]
    bint grads_bad[MAX_PARTS]
    bint overflowed[MAX_PARTS]
    double chunk_squares[SQUARES_CHUNKS]  # the penalty's sum, chunk by chunk
    bint interrupted
    PyObject* gate          # the engine's Gate, let go while signal handlers run
    # the outcome: the update's counter and tally, written by member 0 after each step
    int64_t* steps
    long* batches
    double* loss_total
    double* weight_total
    double last_loss        # the last step's return (as Engine.step's)
    PyObject* error[3]      # what a signal handler raised
    long long next_check    # when the main thread looks for signals next (ns)
    fnn_fp_mode caller_fp_mode  # member 0's thread's floating-point mode


cdef double _batch_norm(const Epoch* ep, const floating* w, intp start,
                        intp m) noexcept nogil:
    """The total weight of the batch of m rows from position start (m without
    weights), summed in row order as the checks of weights sum them."""
    cdef intp i
    cdef double total = 0
    if w == NULL:
        return m
    for i in range(start, start + m):
        total += w[ep.order[i] if ep.order != NULL else i]
    return total


cdef void _part_batch(const Epoch* ep, Batch* part, intp start, intp lo, intp hi,
                      double norm, floating* dtype) noexcept nogil:
    """part = rows lo..hi of the batch from position start (gathered into the batch
    buffers when the epoch has an order), weighed against the batch's whole norm."""
    cdef intp n_in = ep.plan.sizes[0], k = ep.plan.sizes[ep.plan.n_layers], r, row
    cdef const floating* x = <const floating*> ep.x
    cdef const floating* y = <const floating*> ep.y
    cdef const floating* w = <const floating*> ep.w
    cdef floating* x_batch = <floating*> ep.x_batch
    cdef floating* y_batch = <floating*> ep.y_batch
    cdef floating* w_batch = <floating*> ep.w_batch
    part.m, part.norm = hi - lo, norm
    part.y = part.w = NULL
    part.labels = NULL
    if ep.order == NULL:
        part.x = x + (start + lo) * n_in
        if ep.labels != NULL:
            part.labels = ep.labels + start + lo
        else:
            part.y = y + (start + lo) * k
        if w != NULL:
            part.w = w + start + lo
        return
    for r in range(lo, hi):
        row = ep.order[start + r]
        memcpy(x_batch + r * n_in, x + row * n_in, n_in * sizeof(floating))
        if ep.labels != NULL:
            ep.labels_batch[r] = ep.labels[row]
        else:
            memcpy(y_batch + r * k, y + row * k, k * sizeof(floating))
        if w != NULL:
            w_batch[r] = w[row]
    part.x = x_batch + lo * n_in
    if ep.labels != NULL:
        part.labels = ep.labels_batch + lo
    else:
        part.y = y_batch + lo * k
    if w != NULL:
        part.w = w_batch + lo


cdef bint _any(const bint* flags, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        if flags[i]:
            return True
    return False


cdef void _keep_error(Epoch* ep, error) noexcept:
    """ep.error = what raised error, for _reraise (which steals the references)."""
    kind, traceback = type(error), error.__traceback__
    Py_INCREF(kind)
    Py_INCREF(error)
    ep.error[0], ep.error[1] = <PyObject*> kind, <PyObject*> error
    if traceback is not None:
        Py_INCREF(traceback)
        ep.error[2] = <PyObject*> traceback
    ep.interrupted = True


cdef bint _signals_due(Epoch* ep) noexcept nogil:
    """Member 0, at the start of a step: whether the step ends with a look for signals
    (in the main thread, at most every SIGNAL_EVERY_NS)."""
    cdef timespec now
    cdef long long ns
    if not ep.check_signals:
        return False
    clock_gettime(CLOCK_MONOTONIC, &now)
    ns = now.tv_sec * 1000000000LL + now.tv_nsec
    if ns < ep.next_check:
        return False
    ep.next_check = ns + SIGNAL_EVERY_NS
    return True


cdef void _look_for_signals(Epoch* ep) noexcept nogil:
    """Member 0, between two steps (the others waiting): run Python's signal handlers
    with the engine let go (so that a handler may predict or save); what one raises
    (KeyboardInterrupt) stops the epoch."""
    fnn_fp_restore(ep.caller_fp_mode)  # the handlers run in the thread's own mode
    with gil:
        gate = <Gate> ep.gate
        gate.write_end()
        if PyErr_CheckSignals() != 0:
            PyErr_Fetch(&ep.error[0], &ep.error[1], &ep.error[2])
            ep.interrupted = True
        while True:  # the engine back, whatever interrupts the wait for it
            try:
                gate.write_begin()
                break
            except BaseException as error:
                if not ep.interrupted:
                    _keep_error(ep, error)
    fnn_flush_subnormals()


cdef void _part(Epoch* ep, const Phase* ph, int p, floating* params) noexcept nogil:
    """Part p of the batch: its loss into ep.part_loss and, when finite, its gradient
    into its buffer, whether that is not finite into ep.part_bad (a part of several is
    not scanned: their sum is, and any NaN or infinity in a term makes the sum one
    too)."""
    cdef Batch part
    cdef const floating* inputs
    _part_batch(ep, &part, ph.start, ph.mb * p // ph.parts, ph.mb * (p + 1) // ph.parts,
                ph.norm, params)
    ep.part_loss[p] = _forward_loss(ep.plan, params, &part, <floating*> ep.work[p], &inputs)
    ep.part_bad[p] = isfinite(ep.part_loss[p]) and _backward(
        ep.plan, params, <floating*> ep.grads[p], inputs, part.m, <floating*> ep.work[p],
        ph.parts == 1)


cdef intp _cut(const Plan* plan, intp x) noexcept nogil:
    """x rounded down to a multiple of FNN_ADAM_PERIOD values from the start of the
    layer's W or b that holds it: the update's vector kernels treat a W or b in rounds
    of vectors from its start and its ragged end apart, and a cut elsewhere would
    change which values take which path (Adam's refined quotient or the exact one)."""
    cdef int l
    cdef intp start = 0, b
    for l in range(plan.n_layers):
        b = plan.at[l] + plan.sizes[l + 1] * plan.sizes[l]
        if x >= plan.at[l]:
            start = plan.at[l]
        if x >= b:
            start = b
    return start + (x - start) // FNN_ADAM_PERIOD * FNN_ADAM_PERIOD


cdef void _item(Epoch* ep, const Phase* ph, long i, floating* params) noexcept nogil:
    """Item i of phase ph (see PHASE_*). The ranges of the parameters are cut where the
    update's kernels would cut them anyway (_cut), and each sum and update is
    elementwise, so the bits depend on none of the ranges, nor on which member took
    which item."""
    cdef const Plan* plan = ep.plan
    cdef intp n = plan.at[plan.n_layers]
    cdef intp first = 0 if i == 0 else _cut(plan, n * i // ep.ranges)
    cdef intp last = n if i + 1 == ep.ranges else _cut(plan, n * (i + 1) // ep.ranges)
    cdef Optim opt
    if ph.kind == PHASE_PARTS:
        if i < ph.parts:
            _part(ep, ph, i, params)
        else:
            ep.chunk_squares[i - ph.parts] = _chunk_squares(plan, params, i - ph.parts)
    elif ph.kind == PHASE_SUM:
        ep.grads_bad[i] = first < last and _sum_slices(ep, ph.parts, first, last, params)
    else:
        opt = ph.opt
        if ep.ranges > 1:  # the other members read these parameters in the step
            fnn_evict(params + first, (last - first) * sizeof(floating))
        ep.overflowed[i] = first < last and _apply(
            plan, &opt, params, <floating*> ep.grads[0], <floating**> ep.states, first,
            last)


cdef void _take_items(Epoch* ep, floating* params) noexcept nogil:
    """Take and do items of the published phase until none is left."""
    cdef unsigned long long gen
    cdef long i = fnn_take(&ep.ticket, &gen)
    while i >= 0:
        _item(ep, &ep.phases[gen % 2], i, params)
        fnn_item_done(&ep.done[gen % 2])
        i = fnn_take(&ep.ticket, &gen)


cdef void _phase(Epoch* ep, const Phase* ph, int kind, long count,
                 floating* params) noexcept nogil:
    """Member 0: publish ph as a phase of kind with count items, take items of it with
    the others, and return when all are done (alone, do them in order)."""
    cdef unsigned long long gen = ep.gen + 1  # (the ticket holds 32 bits of it: 2**32
    cdef long i                               # phases, some 2e10 rows an epoch)
    cdef Phase published = ph[0]
    published.kind = kind  # before the slot is written: a late helper reading it
    if ep.ranges == 1:     # meanwhile never sees a stop that is not one
        for i in range(count):  # a team of one: in order
            _item(ep, &published, i, params)
        return
    ep.phases[gen % 2] = published
    ep.done[gen % 2] = 0
    ep.gen = gen
    fnn_publish(&ep.ticket, gen, count)
    _take_items(ep, params)
    fnn_wait_done(&ep.done[gen % 2], count)


cdef void _help(Epoch* ep, floating* params) noexcept nogil:
    """A member other than 0: take items of every phase published until the last."""
    cdef unsigned long long gen = 0
    while True:
        gen = fnn_wait_phase(&ep.ticket, gen)
        if ep.phases[gen % 2].kind == PHASE_STOP:
            return
        _take_items(ep, params)


cdef bint _sum_slices(Epoch* ep, int parts, intp first, intp last,
                      floating* params) noexcept nogil:
    """grads[0][first:last] += grads[1] + ... in slice order; whether a sum is not
    finite (tested as the last slice is added). (params: the dtype.)"""
    cdef int p
    cdef bint bad = False
    cdef floating* grads = <floating*> ep.grads[0] + first
    for p in range(1, parts):
        bad = _add_into(grads, <floating*> ep.grads[p] + first, last - first)
    return bad


cdef void _steps(Epoch* ep, floating* params) noexcept nogil:
    """Every step of the epoch (see Engine.epoch), in phases whose items the members
    take (_phase): the forward and backward of each part of the batch and the chunks
    of the penalty's sum, then the sum of the parts' gradients and the update, range
    by range. Member 0 runs this, and decides between the phases."""
    cdef const Plan* plan = ep.plan
    cdef intp chunks = _squares_chunks(plan)
    cdef int parts, p
    cdef double loss
    cdef long t = ep.steps[0]
    cdef Phase ph
    cdef bint look, overflowed
    cdef intp start
    for start from 0 <= start < ep.m by ep.batch_size:
        ph.start = start
        ph.mb = min(ep.batch_size, ep.m - start)
        ph.norm = _batch_norm(ep, <const floating*> ep.w, ph.start, ph.mb)
        if ph.norm == 0:  # nothing to learn from: counted, not stepped
            ep.batches[0] += 1
            ep.last_loss = 0.0
            continue
        parts = ph.parts = _parts(plan, ph.mb, ep.n_threads)
        t += 1
        ph.opt = ep.opt
        ph.opt.t = t
        if ph.opt.decay_per_sample:
            ph.opt.weight_decay /= ph.norm
        look = _signals_due(ep)
        # 1. the loss and gradient of each part of the batch, and the penalty's sums
        # of squares chunk by chunk
        _phase(ep, &ph, PHASE_PARTS, parts + (chunks if ph.opt.weight_decay != 0 else 0),
               params)
        loss = ep.part_loss[0]
        for p in range(1, parts):
            loss += ep.part_loss[p]
        if ph.opt.weight_decay != 0:  # as _penalty
            loss += _penalty_of(ep.chunk_squares, chunks, ph.opt.weight_decay)
        if not isfinite(loss) or _any(ep.part_bad, parts):
            ep.last_loss = loss if not isfinite(loss) else NAN  # nothing was updated
            return
        # 2. the parts' gradients summed in part order
        if parts > 1:
            _phase(ep, &ph, PHASE_SUM, ep.ranges, params)
            if _any(ep.grads_bad, ep.ranges):
                ep.last_loss = NAN
                return
        # 3. the update
        _phase(ep, &ph, PHASE_UPDATE, ep.ranges, params)
        overflowed = _any(ep.overflowed, ep.ranges)
        ep.steps[0] = t  # the update was made
        ep.last_loss = -INFINITY if overflowed else loss
        if overflowed:
            return
        ep.batches[0] += 1
        ep.loss_total[0] += loss * ph.norm
        ep.weight_total[0] += ph.norm
        if look:
            _look_for_signals(ep)
            if ep.interrupted:
                return
            t = ep.steps[0]  # (a handler may have stepped the engine itself)


cdef void _epoch_job(void* context, int member, int members) noexcept nogil:
    """Member 0: _steps, then the last phase; the others: _help. With subnormal
    numbers flushed to zero (as _run), member 0 keeping its thread's own mode for the
    signal handlers it may run."""
    cdef Epoch* ep = <Epoch*> context
    cdef fnn_fp_mode mode = fnn_flush_subnormals()
    cdef Phase stop
    memset(&stop, 0, sizeof(Phase))
    if member == 0:
        ep.caller_fp_mode = mode
        ep.ranges = 1 if members == 1 else min(<int> MAX_PARTS, 4 * members)
        if ep.single:
            _steps(ep, <float*> ep.params)
        else:
            _steps(ep, <double*> ep.params)
        _phase(ep, &stop, PHASE_STOP, 0, <float*> NULL)
    elif ep.single:
        _help(ep, <float*> ep.params)
    else:
        _help(ep, <double*> ep.params)
    fnn_fp_restore(mode)


def default_threads():
    """fit's n_threads when none is given: BLAS's thread limit as the process set it
    (threadpoolctl, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS; while fastnn's teams hold
    BLAS at one thread, the limit they put back), at most the CPUs the process may use;
    1 when fastnn cannot see BLAS's threads (a BLAS other than OpenBLAS)."""
    cdef int limit = fnn_blas_limit()
    return max(1, min(limit, fnn_cpu_count())) if limit > 0 else 1


def flat_buffer(n, dtype, zeros=False):
    """A 1-D array of n values of dtype (zeros when asked) whose data start on a
    64-byte line, for the flat buffers (parameters, gradients, optimizer states):
    numpy's large arrays start 16 bytes past a page, where every 64-byte vector of
    the kernels straddles two cache lines (Adam's update measured 6% slower so, the
    sum of two gradients 25%)."""
    dtype = np.dtype(dtype)
    spare = 64 // dtype.itemsize
    cdef cnp.ndarray buffer = (np.zeros if zeros else np.empty)(n + spare, dtype)
    cdef size_t past_line = <size_t> cnp.PyArray_DATA(buffer) % 64
    start = (64 - past_line) % 64 // dtype.itemsize
    return buffer[start:start + n]


def cpu_count():
    """The CPUs this process may use (its affinity mask on Linux): the budget of every
    team's threads together."""
    return fnn_cpu_count()


cdef int _reraise(PyObject** error) except -1:
    """Raise what a signal handler raised during the epoch."""
    PyErr_Restore(error[0], error[1], error[2])
    return -1


cdef tuple _GENERATORS = (np.random.Generator, np.random.RandomState)  # an order drawn


cdef void _shuffled_rows(bitgen_t* bitgen, intp* order, intp m) noexcept nogil:
    """order = 0, 1, ..., m - 1 shuffled as numpy's permutation(m) shuffles them (a
    Generator's and a RandomState's alike): Fisher-Yates from the last position down,
    position i swapped with random_interval(i), numpy's own draw of a number in [0, i]."""
    cdef intp i, j, t
    for i in range(m):
        order[i] = i
    for i in range(m - 1, 0, -1):
        j = <intp> random_interval(bitgen, <uint64_t> i)
        t = order[i]
        order[i] = order[j]
        order[j] = t


cdef int _draw_order(object rng, intp* order, intp m) except -1:
    """order = rng.permutation(m), the same draws from rng (a numpy Generator or
    RandomState) made in compiled code, its bit generator's lock held and the GIL
    released as numpy's own shuffle does."""
    bits = rng.bit_generator if isinstance(rng, _GENERATORS[0]) else rng._bit_generator
    cdef bitgen_t* bitgen = <bitgen_t*> PyCapsule_GetPointer(bits.capsule, "BitGenerator")
    with bits.lock, nogil:
        _shuffled_rows(bitgen, order, m)
    return 0


def permutation(rng, intp m):
    """rng.permutation(m) (np.intp), drawn as Engine.epoch draws its order: the same
    values, leaving rng in the same state."""
    if not isinstance(rng, _GENERATORS):
        raise TypeError(f"rng must be a numpy.random.Generator or RandomState; got "
                        f"{type(rng).__name__}")
    if m < 0:
        raise ValueError(f"m must be >= 0; got {m}")
    cdef cnp.ndarray order = np.empty(m, np.intp)
    _draw_order(rng, <intp*> cnp.PyArray_DATA(order), m)
    return order


cdef const intp* _checked_order(object order, intp m) except? NULL:
    """The rows of an epoch's order, checked: np.intp (m,), C-contiguous, every value
    in [0, m); NULL for None (the rows in order)."""
    if order is None:
        return NULL
    cdef cnp.ndarray rows = order
    cdef intp i
    if cnp.PyArray_TYPE(rows) != cnp.NPY_INTP or cnp.PyArray_NDIM(rows) != 1 \
            or cnp.PyArray_DIMS(rows)[0] != m or not cnp.PyArray_IS_C_CONTIGUOUS(rows):
        raise ValueError(f"order must be a C-contiguous np.intp array of {m} row numbers")
    cdef const intp* values = <const intp*> cnp.PyArray_DATA(rows)
    for i in range(m):
        if not 0 <= values[i] < m:
            raise ValueError(f"order must hold row numbers in [0, {m}); order[{i}] = "
                             f"{values[i]}")
    return values


cdef int _epoch_buffers(Epoch* ep, int parts, intp n_params, size_t work_bytes,
                        size_t item) except -1:
    """The epoch's buffers: a gradient buffer and a workspace for each slice from 1
    (slice 0 takes the engine's), and with an order the gathered batch. MemoryError
    when one is missing; _epoch_free frees what was made."""
    cdef int p
    cdef intp n_in = ep.plan.sizes[0], k = ep.plan.sizes[ep.plan.n_layers]
    for p in range(1, parts):
        ep.grads[p], ep.work[p] = _aligned_malloc(n_params * item), _aligned_malloc(work_bytes)
        if ep.grads[p] == NULL or ep.work[p] == NULL:
            raise MemoryError()
    if ep.order != NULL:
        ep.x_batch = malloc(ep.batch_size * n_in * item)
        ep.y_batch = malloc(ep.batch_size * k * item)
        ep.labels_batch = <intp*> malloc(ep.batch_size * sizeof(intp))
        ep.w_batch = malloc(ep.batch_size * item)
        if not (ep.x_batch and ep.y_batch and ep.labels_batch and ep.w_batch):
            raise MemoryError()
    return 0


cdef void _epoch_free(Epoch* ep, int parts) noexcept:
    cdef int p
    for p in range(1, parts):
        _aligned_free(ep.grads[p])
        _aligned_free(ep.work[p])
    free(ep.drawn_order)
    free(ep.x_batch)
    free(ep.y_batch)
    free(ep.labels_batch)
    free(ep.w_batch)


# ---------------------------------------------------------------- the Python side

cdef bint _check(cnp.ndarray a, str name, intp size, int ndim, object params) except -1:
    """True for float32, False for float64; TypeError/ValueError unless `a` is a
    C-contiguous ndim-D array of size values of params' dtype (any float when None)."""
    cdef int kind = cnp.PyArray_TYPE(a)
    if kind != cnp.NPY_FLOAT32 and kind != cnp.NPY_FLOAT64:
        raise TypeError(f"{name} must be float32 or float64, got {(<object> a).dtype}")
    if params is not None and kind != cnp.PyArray_TYPE(<cnp.ndarray> params):
        raise TypeError(f"{name} has dtype {(<object> a).dtype}, the model is "
                        f"{params.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_NDIM(a) != ndim \
            or cnp.PyArray_SIZE(a) != size:
        raise ValueError(f"{name} must be a C-contiguous {ndim}-D array of {size} "
                         f"values; got shape {(<object> a).shape}")
    return kind == cnp.NPY_FLOAT32


cdef bint _check_output(cnp.ndarray a, str name, intp size, int ndim,
                        object params) except -1:
    """_check, and that `a` is writeable (it is written in place)."""
    cdef bint single = _check(a, name, size, ndim, params)
    if not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name} must be writeable (it is written in place)")
    return single


# The checks of a call's arrays, for an engine's plan and params (float32 if single).

cdef intp _rows(const Plan* plan, object params, bint single,
                cnp.ndarray X) except -1:
    """m, after checking X (m, n_in) and that every value is finite."""
    cdef intp m, bad
    if cnp.PyArray_NDIM(X) != 2 or cnp.PyArray_DIMS(X)[1] != plan.sizes[0] \
            or cnp.PyArray_DIMS(X)[0] < 1:
        raise ValueError(f"X must have shape (m, {plan.sizes[0]}) with m >= 1; "
                         f"got {(<object> X).shape}")
    m = cnp.PyArray_DIMS(X)[0]
    if m > INT_MAX:  # BLAS takes 32-bit sizes
        raise ValueError(f"X has {m} rows; at most 2**31 - 1 fit one call")
    _check(X, "X", m * plan.sizes[0], 2, params)
    bad = _first_nonfinite(cnp.PyArray_DATA(X), m * plan.sizes[0], single)
    if bad >= 0:
        raise ValueError(_nonfinite_message("X", X, bad))
    return m

cdef int _targets(const Plan* plan, object params, bint single, object Y,
                  Batch* batch) except -1:
    """batch.y = float targets (m, k), or batch.labels = class labels, checked."""
    if not isinstance(Y, cnp.ndarray):  # (None too: its memory is no array's)
        raise TypeError(f"Y must be a numpy array of targets; got {type(Y).__name__}")
    cdef cnp.ndarray arr = Y
    cdef intp k = plan.sizes[plan.n_layers], m = batch.m, bad, i
    if cnp.PyArray_TYPE(arr) == cnp.NPY_INTP and plan.output == OUT_SOFTMAX:
        if cnp.PyArray_NDIM(arr) != 1 or cnp.PyArray_DIMS(arr)[0] != m \
                or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
            raise ValueError(f"labels must be a C-contiguous (m,) = ({m},) array")
        batch.labels = <const intp*> cnp.PyArray_DATA(arr)
        for i in range(m):
            if batch.labels[i] < 0 or batch.labels[i] >= k:
                raise ValueError(f"labels must be in [0, {k}); labels[{i}] = "
                                 f"{batch.labels[i]}")
        return 0
    _check(arr, "Y", m * k, 2, params)
    bad = _first_nonfinite(cnp.PyArray_DATA(arr), m * k, single)
    if bad >= 0:
        raise ValueError(_nonfinite_message("y", arr, bad))
    batch.y = cnp.PyArray_DATA(arr)
    return 0

cdef int _weights(object params, bint single, object weights, Batch* batch) except -1:
    """batch.w and batch.norm from row weights (m,) (None: unweighted, norm m),
    checked finite and >= 0; their sum may be 0. A subnormal weight counts as 0 in
    the sum, as the computation (flushed: _run) reads it."""
    cdef cnp.ndarray arr
    cdef intp i
    cdef double value
    batch.norm = batch.m
    if weights is None:
        return 0
    arr = weights
    _check(arr, "weights", batch.m, 1, params)
    batch.w = cnp.PyArray_DATA(arr)
    batch.norm = 0
    for i in range(batch.m):
        value = (<const float*> batch.w)[i] if single \
            else (<const double*> batch.w)[i]
        if not (isfinite(value) and value >= 0):
            raise ValueError(f"weights must be finite and >= 0; weights[{i}] = "
                             f"{value!r}")
        if value >= (FLT_MIN if single else DBL_MIN):
            batch.norm += value
    if not isfinite(batch.norm):
        raise ValueError("weights must have a finite sum; theirs overflows")
    return 0

cdef int _fill_batch(const Plan* plan, object params, bint single, cnp.ndarray X,
                     object Y, object weights, Batch* batch) except -1:
    """Fill batch from X (checked by _rows), its targets Y and row weights."""
    batch.m = _rows(plan, params, single, X)
    batch.x = cnp.PyArray_DATA(X)
    batch.y = batch.w = NULL
    batch.labels = NULL
    _targets(plan, params, single, Y, batch)
    return _weights(params, single, weights, batch)


cdef class Update:
    """An optimizer bound to one engine: its settings as the compiled step reads them
    (fastnn.optim's code, lr, hyper()), the weight decay, and its state: the arrays
    (params' layout) and the step counter, an int64 array of one element, which the
    step increments with the update in the same compiled call, so an interrupt can
    never separate the two. Made by Engine.updater, which checks everything once.

    It also keeps the running tally of an epoch, which each step adds to in the same
    compiled call as its update (so an interrupt cannot separate them either):
    `batches` (steps taken, a batch of zero weight included), `loss_total` (the sum of
    each step's loss times its total weight, or rows) and `weight_total` (the sum of
    those weights); start_epoch() zeroes them."""
    cdef Optim opt
    cdef object engine
    cdef list arrays             # keeps the state arrays alive for the pointers
    cdef void* states[MAX_STATES]
    cdef int64_t* steps
    cdef object counter
    cdef readonly long batches
    cdef readonly double loss_total, weight_total

    def __cinit__(self, engine, settings):
        cdef int i, n_hyper = 0
        optimizer, state, params = settings.optimizer, settings.state, engine.params
        hyper, arrays = tuple(optimizer.hyper()), list(state.arrays)
        self.opt.kind = optimizer.code
        if _optimizer_reads(self.opt.kind, &n_hyper) != len(arrays) \
                or len(hyper) != n_hyper or optimizer.n_states != len(arrays):
            raise ValueError(f"optimizer {optimizer!r} (code {self.opt.kind}) does not fit "
                             f"the compiled step with {len(arrays)} state arrays and "
                             f"{len(hyper)} settings")
        self.opt.lr = optimizer.lr
        self.opt.weight_decay = settings.weight_decay
        self.opt.decay_per_sample = settings.decay_per_sample
        for i in range(MAX_HYPER):
            self.opt.hyper[i] = hyper[i] if i < len(hyper) else 0
        for i in range(MAX_STATES):
            self.states[i] = NULL
        for i, array in enumerate(arrays):
            _check_output(array, f"state.arrays[{i}]", params.size, 1, params)
            self.states[i] = cnp.PyArray_DATA(array)
        counter = state.steps
        if not isinstance(counter, np.ndarray) or counter.dtype != np.int64 \
                or counter.shape != (1,) or not counter.flags.c_contiguous \
                or not counter.flags.writeable:
            raise TypeError("state.steps must be a writeable int64 array of one element")
        self.counter, self.arrays, self.engine = counter, arrays, engine
        self.steps = <int64_t*> cnp.PyArray_DATA(counter)

    def start_epoch(self):
        """Zero the epoch's tally: batches, loss_total and weight_total."""
        self.batches, self.loss_total, self.weight_total = 0, 0.0, 0.0

    @property
    def epoch_loss(self):
        """The tally's mean: loss_total / weight_total (NaN before any weight)."""
        return self.loss_total / self.weight_total if self.weight_total else NAN


cdef class Engine:
    """The compiled side of an MLP: its flat parameters and the plan to walk them.

    Engine(params, sizes, activations, output, negative_slope) keeps a reference to
    params (float32 or float64, C-contiguous, 1-D) and works on it in place;
    activations are the codes of every layer (the output layer's is identity's), output
    the output's code (the order of fastnn.activations.ACTIVATIONS and of
    fastnn.model.OUTPUTS). The methods take arrays already checked by fastnn.model;
    they verify dtype, order, shape and finiteness once more in C, where it costs next
    to nothing. fastnn.reference.Engine is its NumPy twin, with the same methods.

    Threads: predict, loss and gradients only read the parameters and may run in any
    number of threads at once (each call has its own workspace, the GIL is released;
    a small read, SMALL_READ, holds the GIL and uses the engine's own workspace);
    a step (or assign) waits for the running readers and new readers wait for it (a
    Gate), so none ever sees half-updated weights; steps and assigns take turns.
    """
    cdef Plan plan
    cdef readonly object params
    cdef object grads            # the step's gradients (scratch)
    cdef bint single
    cdef void* work              # the step's workspace (steps never overlap)
    cdef intp work_rows
    cdef void* small_work        # small reads' workspace (they hold the GIL)
    cdef size_t small_bytes
    cdef bint small_busy
    cdef Gate gate

    def __cinit__(self, cnp.ndarray params, sizes, activations, int output,
                  double negative_slope):
        self.gate = Gate()
        _plan_build(&self.plan, sizes, activations, output, negative_slope,
                    params.itemsize)
        self.single = _check_output(params, "params", self.plan.at[self.plan.n_layers], 1,
                                    None)
        self.params = params
        self.grads = flat_buffer(params.size, params.dtype)

    def __dealloc__(self):
        _plan_free(&self.plan)
        _aligned_free(self.work)
        _aligned_free(self.small_work)

    @property
    def n_params(self):
        """The number of parameters: the length of params."""
        return self.plan.at[self.plan.n_layers]

    def feature_major(self, intp m):
        """True when a batch of m goes through the narrow, feature-major path."""
        return _feature_major(&self.plan, m)

    cdef size_t _work_bytes(self, intp m) except 0:
        """Bytes of workspace for a batch of m (or fewer), refusing sizes that would
        overflow."""
        cdef size_t item = 4 if self.single else 8
        cdef intp per_row = _work_size(&self.plan, 1) * item
        cdef intp scratch = self.plan.scratch_bytes  # last (_dense_forward)
        if m > (PY_SSIZE_T_MAX - scratch) // per_row - 64:
            raise MemoryError(f"a batch of {m} rows needs more memory than can be addressed")
        return _stride(&self.plan, m, item) * per_row + scratch

    # ------------------------------------------------------------ readers

    cdef void* _read_begin(self, intp m, bint small) except NULL:
        """Enter as a reader (waiting while a step is, or is about to be, changing the
        weights) and return a workspace for m rows, freed or given back by _read_end:
        for a small read, which holds the GIL until then, the engine's own (kept
        between calls, grown as needed) unless another read has it; else its own."""
        cdef size_t nbytes = self._work_bytes(m)
        cdef void* work = NULL
        self.gate.read_begin()
        if small and not self.small_busy:
            if nbytes > self.small_bytes:
                _aligned_free(self.small_work)
                self.small_work = _aligned_malloc(nbytes)
                self.small_bytes = nbytes if self.small_work != NULL else 0
            if self.small_work != NULL:
                self.small_busy = True
                return self.small_work
        work = _aligned_malloc(nbytes)
        if work == NULL:
            self.gate.read_end()
            raise MemoryError()
        return work

    cdef void _read_end(self, void* work) noexcept:
        if work == self.small_work:
            self.small_busy = False
        else:
            _aligned_free(work)
        self.gate.read_end()

    cdef double _read(self, Batch* batch, cnp.ndarray grads, cnp.ndarray out,
                      double wd) except? -1:
        """A reader's call on a batch (filled by _batch; for predictions only x and m):
        predict into out when given, else the loss, plus 0.5 wd sum ||W||^2 (and the
        gradients into grads when given)."""
        cdef intp k = self.plan.sizes[self.plan.n_layers]
        cdef void* g = NULL
        cdef void* o = NULL
        cdef double loss
        if out is not None:  # checked by the caller
            o = cnp.PyArray_DATA(out)
        if grads is not None:
            _check_output(grads, "grads", self.plan.at[self.plan.n_layers], 1, self.params)
            g = cnp.PyArray_DATA(grads)
        if not (wd >= 0 and isfinite(wd)):
            raise ValueError(f"weight_decay must be finite and >= 0; got {wd!r}")
        cdef void* p = cnp.PyArray_DATA(self.params)
        cdef bint small = batch.m <= SMALL_READ // self.plan.at[self.plan.n_layers]
        cdef void* work = self._read_begin(batch.m, small)
        try:
            if small:  # holding the GIL
                loss = _run(&self.plan, self.single, p, g, batch, work, wd, g != NULL, o)
            else:
                with nogil:
                    loss = _run(&self.plan, self.single, p, g, batch, work, wd, g != NULL,
                                o)
        finally:
            self._read_end(work)
        return loss

    def predict(self, cnp.ndarray X not None, cnp.ndarray out=None, intp first_row=0):
        """out (m, k) = the output (probabilities or values) for X (m, n_in); returns out,
        a new array when none is given. Thread-safe: a reader (see the class's Threads).
        ValueError if an output is not finite (the network's values overflowed), naming
        its row as first_row + its index in X (X being rows of a larger matrix)."""
        return self._predict(X, out, 2, first_row)

    cdef object _predict_ready(self, object X):
        """predict(X), flattened to (m,) for an output of one unit, when X is already
        what the engine reads: a C-contiguous 2-D ndarray of the model's dtype and
        width with rows; else None, for the caller to convert X first (the fast path
        of predict_proba, below)."""
        if type(X) is not cnp.ndarray:  # (the C type: no module attribute looked up)
            return None
        cdef cnp.ndarray arr = <cnp.ndarray> X
        if cnp.PyArray_TYPE(arr) != (cnp.NPY_FLOAT32 if self.single else cnp.NPY_FLOAT64) \
                or cnp.PyArray_NDIM(arr) != 2 or cnp.PyArray_DIMS(arr)[0] < 1 \
                or cnp.PyArray_DIMS(arr)[1] != self.plan.sizes[0] \
                or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
            return None
        return self._predict(arr, None, 1 if self.plan.sizes[self.plan.n_layers] == 1
                             else 2, 0)

    cdef object _predict(self, cnp.ndarray X, cnp.ndarray out, int ndim, intp first_row):
        """predict, into out (checked: (m, k)) or a new array of ndim dimensions."""
        cdef Batch batch
        cdef cnp.npy_intp dims[2]
        batch.m = _rows(&self.plan, self.params, self.single, X)
        batch.x = cnp.PyArray_DATA(X)
        dims[0], dims[1] = batch.m, self.plan.sizes[self.plan.n_layers]
        if out is not None:
            _check_output(out, "out", dims[0] * dims[1], 2, self.params)
        else:
            out = cnp.PyArray_EMPTY(ndim, dims, cnp.NPY_FLOAT32 if self.single
                                    else cnp.NPY_FLOAT64, 0)
        self._read(&batch, None, out, 0)
        cdef intp bad = _first_nonfinite(cnp.PyArray_DATA(out), dims[0] * dims[1],
                                         self.single)
        if bad >= 0:
            raise ValueError(f"the network's output for X[{first_row + bad // dims[1]}] "
                             f"is not finite: its values overflow {self.params.dtype} (X or the "
                             f"weights are too large)")
        return out

    def loss(self, cnp.ndarray X not None, Y, weights=None, double weight_decay=0):
        """The loss on (X, Y), forward only: the mean over rows (weighted by weights,
        (m,) of the model's dtype, when given), plus 0.5 weight_decay sum ||W||^2.

        Y: float targets (m, k) of the model's dtype, or np.intp labels (m,) for softmax.
        Weights summing to 0 give NaN; a subnormal weight counts as 0.
        """
        cdef Batch batch
        _fill_batch(&self.plan, self.params, self.single, X, Y, weights, &batch)
        return self._read(&batch, None, None, weight_decay)

    def loss_and_gradients(self, cnp.ndarray X not None, Y, cnp.ndarray grads not None,
                           weights=None, double weight_decay=0):
        """The loss on (X, Y), as `loss` computes it; writes its gradient (params'
        layout) into grads."""
        cdef Batch batch
        _fill_batch(&self.plan, self.params, self.single, X, Y, weights, &batch)
        return self._read(&batch, grads, None, weight_decay)

    def read(self, function):
        """function() run as a reader, between two steps: no step or assign runs while
        it does (so the parameters, an Update's state arrays and its step counter all
        stay those of one step); returns its result. It must not step or assign
        itself, which would wait for it forever."""
        self.gate.read_begin()
        try:
            return function()
        finally:
            self.gate.read_end()

    # ------------------------------------------------------------ writers

    cdef void* _workspace(self, intp m) except NULL:
        """The step's workspace, grown (never shrunk) to hold a batch of m."""
        cdef size_t nbytes = self._work_bytes(m)
        if m > self.work_rows:
            _aligned_free(self.work)
            self.work_rows = 0
            self.work = _aligned_malloc(nbytes)
            if self.work == NULL:
                raise MemoryError()
            self.work_rows = m
        return self.work

    def write(self, function):
        """function() run as the writer: no prediction, read, step or assign of
        another thread runs while it does (the model's history is recorded so, so
        that a save between steps never sees half an epoch's entries); returns its
        result. A step or assign from it (or from a signal handler interrupting it) is
        refused with RuntimeError; a read from it goes in, between two of its bytecodes
        (fit's record puts an epoch's entries in with no bytecode between them, so a
        handler's save sees them all or none)."""
        self.gate.write_begin()
        try:
            return function()
        finally:
            self.gate.write_end()

    def assign(self, cnp.ndarray values):
        """params[...] = values (same size and dtype), never while a prediction runs."""
        _check(values, "values", self.plan.at[self.plan.n_layers], 1, self.params)
        self.gate.write_begin()
        try:
            self.params[...] = values
        finally:
            self.gate.write_end()

    def updater(self, settings):
        """The Update that steps with settings.optimizer (a fastnn.optim optimizer: its
        code, lr, hyper() and n_states), settings.weight_decay (L2) and settings.state
        (a fastnn.optim.OptimizerState: `arrays`, n_states arrays in params' layout,
        and `steps`, the int64 step counter of one element); checked here, once."""
        return Update(self, settings)

    def step(self, cnp.ndarray X not None, Y, Update update not None, weights=None):
        """One training step in place; returns the loss (the mean over rows, weighted
        by weights, (m,) of the model's dtype, when given) + 0.5 wd sum ||W||^2, where
        wd is the update's weight decay (divided by the batch's total weight when it
        is per sample).

        The step is number steps[0] + 1 (Adam's bias correction); steps[0] is
        incremented when the update is made, and the update's epoch tally with a
        finite return. A non-finite return means nothing was updated, except -inf: the
        update was made and overflowed a parameter. A batch whose weights sum to 0
        changes nothing but the tally's batch count and returns 0.0.
        """
        return _train(self, X, Y, update,
                      cnp.PyArray_DIMS(X)[0] if cnp.PyArray_NDIM(X) else 1, None, weights, 1,
                      False)

    def epoch(self, cnp.ndarray X not None, Y, Update update not None, intp batch_size,
              order=None, weights=None, int n_threads=1):
        """Steps over (X, Y) in batches of batch_size rows (the last one shorter), in
        one compiled call with the GIL released; each step is the one `step` takes on
        that batch. Returns the last step's return, as `step`'s: a non-finite one
        stops the epoch there (the steps before it stand).

        order: None (the rows in order), np.intp (m,) row numbers, or a numpy Generator
        or RandomState, from which the call draws rng.permutation(m) itself (the same
        draws, in compiled code: see permutation; a subclass's own permutation is
        called instead, in Python): the batches are then gathered in
        that order into buffers of the call. n_threads (1 to 64) splits
        each step with enough work into up to n_threads slices of its rows, run on
        fastnn's own threads (as many as the CPUs free from other fastnn calls allow),
        BLAS on one thread meanwhile (left alone when every step takes the narrow path,
        which calls no BLAS); the gradients of the slices are summed in slice order, so
        the result depends on n_threads, never on the threads that ran it.

        In the main thread, signal handlers run every 20 ms or so, between two steps,
        with the engine let go (a handler may predict or save): what they raise
        (KeyboardInterrupt) stops the epoch there, and the update's tally counts the
        steps taken. Otherwise no prediction or read runs during the call (it holds
        the engine as the writer)."""
        return _train(self, X, Y, update, batch_size, order, weights, n_threads,
                      threading.current_thread() is threading.main_thread())


def predict_proba(self, X):
    """The output layer's values for X.

    Parameters
    ----------
    X : array-like or scipy.sparse matrix of shape (m, n_features)
        Samples as rows, of the model's dtype (integers, booleans and lists are
        converted; the other float precision is refused). A sparse X is
        densified a chunk of rows at a time.

    Returns
    -------
    numpy.ndarray
        Probabilities (sigmoid, softmax) or values (identity), (m, k); (m,) when
        the output has one unit.

    Raises
    ------
    TypeError, ValueError
        If X has the wrong dtype or shape, or is not finite.
    """
    # MLP.predict_proba is this compiled function, so that an X the engine reads as it
    # is meets no Python frame on its way: a one-sample call takes about 1 us, of which
    # such a frame took 40 ns (docs/performance.md, One row). Any other X goes to
    # MLP._predict_proba_converted.
    cdef object out = (<Engine?> self._engine)._predict_ready(X)
    return self._predict_proba_converted(X) if out is None else out


cdef double _train(Engine self, cnp.ndarray X, Y, Update update, intp batch_size,
                   order, weights, int n_threads, bint check_signals) except? -2:
    """Engine.epoch's work (see there), its arguments checked first."""
    if update.engine is not self:
        raise ValueError("this Update was made by another engine's updater")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if not 1 <= n_threads <= MAX_PARTS:
        raise ValueError(f"n_threads must be in [1, {MAX_PARTS}]; got {n_threads}")
    cdef Batch data
    cdef Epoch ep
    _fill_batch(&self.plan, self.params, self.single, X, Y, weights, &data)
    memset(&ep, 0, sizeof(Epoch))
    cdef bint draw = order is not None and (type(order) is _GENERATORS[0]
                                            or type(order) is _GENERATORS[1])
    if not draw:
        if order is not None and isinstance(order, _GENERATORS):  # a subclass: its own
            order = np.ascontiguousarray(order.permutation(data.m), dtype=np.intp)
        ep.order = _checked_order(order, data.m)
    ep.plan, ep.single, ep.m = &self.plan, self.single, data.m
    ep.batch_size, ep.n_threads = min(batch_size, data.m), n_threads
    ep.check_signals, ep.params = check_signals, cnp.PyArray_DATA(self.params)
    ep.gate = <PyObject*> self.gate
    ep.states, ep.opt = update.states, update.opt
    ep.x, ep.y, ep.labels, ep.w = data.x, data.y, data.labels, data.w
    ep.steps, ep.batches = update.steps, &update.batches
    ep.loss_total, ep.weight_total = &update.loss_total, &update.weight_total
    cdef intp last = ep.m - (ep.m - 1) // ep.batch_size * ep.batch_size  # its rows
    cdef int parts = max(_parts(&self.plan, ep.batch_size, n_threads),
                         _parts(&self.plan, last, n_threads))
    cdef intp rows = max(_part_rows(&self.plan, ep.batch_size, n_threads),
                         _part_rows(&self.plan, last, n_threads))
    cdef intp fewest = min(  # rows of the smallest part: all narrow (no BLAS) from it
        ep.batch_size // _parts(&self.plan, ep.batch_size, n_threads),
        last // _parts(&self.plan, last, n_threads))
    cdef void* work = NULL
    cdef intp work_rows = 0
    if draw:
        ep.drawn_order = <intp*> malloc(max(data.m, 1) * sizeof(intp))
        if ep.drawn_order == NULL:
            raise MemoryError()
        ep.order = ep.drawn_order
    try:  # the draw before the engine is taken (it waits for the generator's lock)
        if draw:
            _draw_order(order, ep.drawn_order, data.m)
        self.gate.write_begin()
    except BaseException:
        free(ep.drawn_order)
        raise
    try:
        _epoch_buffers(&ep, parts, self.plan.at[self.plan.n_layers],
                       self._work_bytes(rows), 4 if self.single else 8)
        # the engine's workspace is the epoch's own until it ends (a signal handler
        # that steps the engine meanwhile makes another)
        ep.work[0], work, work_rows = self._workspace(rows), self.work, self.work_rows
        self.work, self.work_rows = NULL, 0
        ep.grads[0] = cnp.PyArray_DATA(self.grads)
        with nogil:
            fnn_team_run(parts, _epoch_job, &ep, not _feature_major(&self.plan, fewest))
    finally:
        if work != NULL and self.work == NULL:
            self.work, self.work_rows = work, work_rows
        else:
            _aligned_free(work)
        self.gate.write_end()
        _epoch_free(&ep, parts)
    if ep.error[0] != NULL:
        _reraise(ep.error)
    return ep.last_loss
