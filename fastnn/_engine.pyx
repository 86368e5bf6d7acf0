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
import numpy as np
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY, NAN, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from fastnn._gate cimport Gate
from fastnn._kernels import _nonfinite_message
from fastnn._ops cimport (IDENTITY, MAX_HYPER, MAX_STATES, NARROW_BYTES, NARROW_MIN,
                          OUT_SOFTMAX, Optim, _activation_grad, _dense_backward,
                          _dense_forward, _first_nonfinite, _narrow_dense_backward,
                          _narrow_dense_forward, _optimizer_reads, _output_activation,
                          _output_loss, _transpose, _update, fnn_vector_build, intp)

cnp.import_array()
fnn_vector_build()  # settles the vector build at import, before any thread can ask


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
    plan.output = output
    plan.slope = slope
    plan.narrow = max(sizes) * itemsize <= NARROW_BYTES
    return 0


cdef void _plan_free(Plan* plan) noexcept:
    free(plan.sizes)
    free(plan.acts)
    free(plan.at)
    free(plan.rows_at)


cdef inline intp _work_size(const Plan* plan, intp m) noexcept nogil:
    """Workspace for a batch of m: Z and A of every layer, two gradient buffers dz and
    other, and for narrow plans the transposed input."""
    return (m * plan.rows_at[plan.n_layers] + 2 * m * plan.max_width
            + (m * plan.sizes[0] if plan.narrow else 0))


cdef inline bint _feature_major(const Plan* plan, intp m) noexcept nogil:
    return plan.narrow and m >= NARROW_MIN


# ---------------------------------------------------------------- the network

cdef const floating* _forward(const Plan* plan, const floating* params,
                              const floating* x, intp m, floating* work) noexcept nogil:
    """Every layer's Z and A into work; the output layer's Z holds the logits and its
    A is left for the output function. Feature-major for narrow plans (see _ops.pxd),
    which skip the Z that the backward pass does not read. Returns the network's
    input as the backward pass reads it: x, or its transpose in the workspace."""
    cdef intp l, n_in, n_out
    cdef bint fm = _feature_major(plan, m)
    cdef const floating* a_prev = x
    cdef const floating* w
    cdef floating* z
    cdef floating* a
    cdef floating* transposed
    if fm:  # the input's transpose, at the end of the workspace
        transposed = work + _work_size(plan, m) - m * plan.sizes[0]
        _transpose(x, transposed, m, plan.sizes[0])
        a_prev = transposed
    cdef const floating* inputs = a_prev
    for l in range(plan.n_layers):
        n_in, n_out = plan.sizes[l], plan.sizes[l + 1]
        w, z = params + plan.at[l], work + m * plan.rows_at[l]
        # the output layer's A is its Z: the logits, which the output function reads
        a = z + m * n_out if l + 1 < plan.n_layers else z
        if fm:
            _narrow_dense_forward(a_prev, w, w + n_out * n_in, z, a, m, n_in, n_out,
                                  plan.acts[l], <floating> plan.slope)
        else:
            _dense_forward(a_prev, w, w + n_out * n_in, z, a, m, n_in, n_out,
                           plan.acts[l], <floating> plan.slope)
        a_prev = a
    return inputs


cdef double _sum_squared_weights(const Plan* plan, const floating* params) noexcept nogil:
    """sum over layers of ||W||^2 (biases excluded), for the L2 penalty."""
    cdef intp l, i
    cdef double total = 0
    cdef const floating* w
    for l in range(plan.n_layers):
        w = params + plan.at[l]
        for i in range(plan.sizes[l + 1] * plan.sizes[l]):
            total += (<double> w[i]) * w[i]
    return total


cdef bint _backward(const Plan* plan, const floating* params, floating* grads,
                    const floating* inputs, intp m, floating* work,
                    bint check) noexcept nogil:
    """Every layer's gradient into grads, from the output layer's dZ in the workspace
    (its two gradient buffers take turns). With check, returns whether a gradient is
    not finite (tested layer by layer, while still in cache)."""
    cdef intp l, n_in, n_out
    cdef bint fm = _feature_major(plan, m)
    cdef floating* dz = work + m * plan.rows_at[plan.n_layers]
    cdef floating* other = dz + m * plan.max_width
    cdef floating* z_prev = NULL
    cdef const floating* a_prev
    cdef bint bad = False
    for l in range(plan.n_layers - 1, -1, -1):
        n_in, n_out = plan.sizes[l], plan.sizes[l + 1]
        a_prev = inputs
        if l > 0:
            z_prev = work + m * plan.rows_at[l - 1]
            a_prev = z_prev + m * n_in
        if fm:  # other = dZ of layer l - 1 at once
            _narrow_dense_backward(dz, a_prev, params + plan.at[l], grads + plan.at[l],
                                   grads + plan.at[l] + n_out * n_in,
                                   other if l > 0 else NULL, z_prev,
                                   plan.acts[l - 1] if l > 0 else IDENTITY,
                                   <floating> plan.slope, m, n_in, n_out)
        else:
            _dense_backward(dz, a_prev, params + plan.at[l], grads + plan.at[l],
                            grads + plan.at[l] + n_out * n_in, other if l > 0 else NULL,
                            m, n_in, n_out)
            if l > 0:
                _activation_grad(other, z_prev, a_prev, other, m * n_in,
                                 plan.acts[l - 1], <floating> plan.slope)
        if check and not bad:
            bad = _first_nonfinite(grads + plan.at[l], plan.at[l + 1] - plan.at[l],
                                   sizeof(floating) == 4) >= 0
        dz, other = other, dz
    return bad


cdef bint _apply(const Plan* plan, const Optim* opt, floating* params,
                 const floating* grads, floating** states) noexcept nogil:
    """The optimizer's update of every layer (weight decay on W, not b); returns
    whether it overflowed a parameter (tested layer by layer, while in cache)."""
    cdef intp l, at, n_w
    cdef bint overflowed = False
    for l in range(plan.n_layers):
        at, n_w = plan.at[l], plan.sizes[l + 1] * plan.sizes[l]
        _update(opt, params + at, grads + at, states, at, n_w, opt.weight_decay)
        _update(opt, params + at + n_w, grads + at + n_w, states, at + n_w,
                plan.sizes[l + 1], 0)
        if _first_nonfinite(params + at, plan.at[l + 1] - at, sizeof(floating) == 4) >= 0:
            overflowed = True
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


cdef double _step(const Plan* plan, floating* params, floating* grads, floating** states,
                  const Batch* batch, floating* work, const Optim* opt, double wd,
                  bint backward) noexcept nogil:
    """Forward and the loss, plus 0.5 wd sum ||W||^2 (at the weights the step started
    from); with backward, every layer's gradient into grads; with opt, the update of
    every layer, its weight decay replacing wd (divided by the batch's total weight
    when opt.decay_per_sample).

    Returns that loss. When training and the loss or a gradient is not finite, the
    update is not made and the return is that loss, or NaN: the parameters stay as
    they were. When the update itself overflowed a parameter, the return is -inf (the
    update was made).
    """
    cdef intp L = plan.n_layers, k = plan.sizes[L], m = batch.m
    cdef floating* logits = work + m * plan.rows_at[L - 1]
    cdef floating* dz = work + m * plan.rows_at[L]
    cdef const floating* y = <const floating*> batch.y
    cdef const floating* w = <const floating*> batch.w
    cdef double loss
    cdef Optim local
    if opt != NULL:
        local = opt[0]
        if local.decay_per_sample:
            local.weight_decay /= batch.norm
        wd = local.weight_decay
    cdef const floating* inputs = _forward(plan, params, <const floating*> batch.x, m,
                                           work)
    if _feature_major(plan, m) and k > 1:  # the output kernels read rows: logits to
        _transpose(logits, dz + m * plan.max_width, k, m)  # rows, dZ back
        loss = _output_loss(plan.output, dz + m * plan.max_width, y, batch.labels, w,
                            batch.norm, logits + m * k, logits, m, k)
        _transpose(logits, dz, m, k)
    else:  # (k = 1: the two layouts are the same memory)
        loss = _output_loss(plan.output, logits, y, batch.labels, w, batch.norm,
                            logits + m * k, dz, m, k)
    if wd != 0:
        loss += 0.5 * wd * _sum_squared_weights(plan, params)
    if not backward or (opt != NULL and not isfinite(loss)):
        return loss
    if _backward(plan, params, grads, inputs, m, work, opt != NULL):
        return NAN
    if opt == NULL:
        if wd != 0:
            _add_decay(plan, params, grads, wd)
    elif _apply(plan, &local, params, grads, states):
        return -INFINITY
    return loss


cdef void _predict(const Plan* plan, const floating* params, const floating* x, intp m,
                   floating* work, floating* out) noexcept nogil:
    """out = the network's output: probabilities (sigmoid, softmax) or values."""
    cdef intp k = plan.sizes[plan.n_layers]
    cdef floating* logits = work + m * plan.rows_at[plan.n_layers - 1]
    _forward(plan, params, x, m, work)
    if _feature_major(plan, m) and k > 1:
        _transpose(logits, out, k, m)  # then in place: the output functions allow it
        logits = out
    _output_activation(plan.output, logits, out, m, k)


cdef double _run(const Plan* plan, bint single, void* params, void* grads, void** states,
                 const Batch* batch, void* work, const Optim* opt, double wd,
                 bint backward, void* out) noexcept nogil:
    """_step, or _predict of batch.x when out is not NULL, in the model's dtype."""
    if single and out != NULL:
        _predict(plan, <const float*> params, <const float*> batch.x, batch.m,
                 <float*> work, <float*> out)
    elif out != NULL:
        _predict(plan, <const double*> params, <const double*> batch.x, batch.m,
                 <double*> work, <double*> out)
    elif single:
        return _step(plan, <float*> params, <float*> grads, <float**> states, batch,
                     <float*> work, opt, wd, backward)
    else:
        return _step(plan, <double*> params, <double*> grads, <double**> states, batch,
                     <double*> work, opt, wd, backward)
    return 0


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
    checked finite and >= 0; their sum may be 0."""
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
    number of threads at once (each call has its own workspace, the GIL is released);
    a step (or assign) waits for the running readers and new readers wait for it (a
    Gate), so none ever sees half-updated weights; steps and assigns take turns.
    """
    cdef Plan plan
    cdef readonly object params
    cdef object grads            # the step's gradients (scratch)
    cdef bint single
    cdef void* work              # the step's workspace (steps never overlap)
    cdef intp work_rows
    cdef Gate gate

    def __cinit__(self, cnp.ndarray params, sizes, activations, int output,
                  double negative_slope):
        self.gate = Gate()
        _plan_build(&self.plan, sizes, activations, output, negative_slope,
                    params.itemsize)
        self.single = _check_output(params, "params", self.plan.at[self.plan.n_layers], 1,
                                    None)
        self.params = params
        self.grads = np.empty_like(params)

    def __dealloc__(self):
        _plan_free(&self.plan)
        free(self.work)

    @property
    def n_params(self):
        """The number of parameters: the length of params."""
        return self.plan.at[self.plan.n_layers]

    def feature_major(self, intp m):
        """True when a batch of m goes through the narrow, feature-major path."""
        return _feature_major(&self.plan, m)

    cdef size_t _work_bytes(self, intp m) except 0:
        """Bytes of workspace for a batch of m, refusing sizes that would overflow."""
        cdef intp per_row = _work_size(&self.plan, 1) * (4 if self.single else 8)
        if m > PY_SSIZE_T_MAX // per_row:
            raise MemoryError(f"a batch of {m} rows needs more memory than can be addressed")
        return m * per_row

    # ------------------------------------------------------------ readers

    cdef void* _read_begin(self, intp m) except NULL:
        """Enter as a reader (waiting while a step is, or is about to be, changing the
        weights) and return a private workspace for m rows (freed by _read_end)."""
        cdef size_t nbytes = self._work_bytes(m)
        self.gate.read_begin()
        cdef void* work = malloc(nbytes)
        if work == NULL:
            self.gate.read_end()
            raise MemoryError()
        return work

    cdef void _read_end(self, void* work) noexcept:
        free(work)
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
        if out is not None:
            _check_output(out, "out", batch.m * k, 2, self.params)
            o = cnp.PyArray_DATA(out)
        if grads is not None:
            _check_output(grads, "grads", self.plan.at[self.plan.n_layers], 1, self.params)
            g = cnp.PyArray_DATA(grads)
        if not (wd >= 0 and isfinite(wd)):
            raise ValueError(f"weight_decay must be finite and >= 0; got {wd!r}")
        cdef void* p = cnp.PyArray_DATA(self.params)
        cdef void* work = self._read_begin(batch.m)
        try:
            with nogil:
                loss = _run(&self.plan, self.single, p, g, NULL, batch, work, NULL, wd,
                            g != NULL, o)
        finally:
            self._read_end(work)
        return loss

    def predict(self, cnp.ndarray X, cnp.ndarray out=None, intp first_row=0):
        """out (m, k) = the output (probabilities or values) for X (m, n_in); returns out,
        a new array when none is given. Thread-safe: each call has its own workspace.
        ValueError if an output is not finite (the network's values overflowed), naming
        its row as first_row + its index in X (X being rows of a larger matrix)."""
        cdef Batch batch
        cdef cnp.npy_intp dims[2]
        batch.m = _rows(&self.plan, self.params, self.single, X)
        batch.x = cnp.PyArray_DATA(X)
        dims[0], dims[1] = batch.m, self.plan.sizes[self.plan.n_layers]
        if out is None:
            out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT32 if self.single
                                    else cnp.NPY_FLOAT64, 0)
        self._read(&batch, None, out, 0)
        cdef intp bad = _first_nonfinite(cnp.PyArray_DATA(out), dims[0] * dims[1],
                                         self.single)
        if bad >= 0:
            raise ValueError(f"the network's output for X[{first_row + bad // dims[1]}] "
                             f"is not finite: its values overflow {self.params.dtype} (X or the "
                             f"weights are too large)")
        return out

    def loss(self, cnp.ndarray X, Y, weights=None, double weight_decay=0):
        """The loss on (X, Y), forward only: the mean over rows (weighted by weights,
        (m,) of the model's dtype, when given), plus 0.5 weight_decay sum ||W||^2.

        Y: float targets (m, k) of the model's dtype, or np.intp labels (m,) for softmax.
        Weights summing to 0 give NaN.
        """
        cdef Batch batch
        _fill_batch(&self.plan, self.params, self.single, X, Y, weights, &batch)
        return self._read(&batch, None, None, weight_decay)

    def loss_and_gradients(self, cnp.ndarray X, Y, cnp.ndarray grads, weights=None,
                           double weight_decay=0):
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
            free(self.work)
            self.work_rows = 0
            self.work = malloc(nbytes)
            if self.work == NULL:
                raise MemoryError()
            self.work_rows = m
        return self.work

    def write(self, function):
        """function() run as the writer: no prediction, read, step or assign runs while
        it does (the model's history is recorded so, so that a save between steps
        never sees half an epoch's entries); returns its result. It must not read,
        step or assign itself, which would wait for it forever."""
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

    def step(self, cnp.ndarray X, Y, Update update not None, weights=None):
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
        if update.engine is not self:
            raise ValueError("this Update was made by another engine's updater")
        cdef Batch batch
        _fill_batch(&self.plan, self.params, self.single, X, Y, weights, &batch)
        if batch.norm == 0:
            update.batches += 1
            return 0.0
        cdef void* p = cnp.PyArray_DATA(self.params)
        cdef void* g = cnp.PyArray_DATA(self.grads)
        cdef double loss
        cdef void* work
        self.gate.write_begin()
        try:
            work = self._workspace(batch.m)
            with nogil:
                update.opt.t = update.steps[0] + 1
                loss = _run(&self.plan, self.single, p, g, update.states, &batch, work,
                            &update.opt, 0, True, NULL)
                if isfinite(loss) or loss == -INFINITY:
                    update.steps[0] += 1  # the update was made
                if isfinite(loss):
                    update.batches += 1
                    update.loss_total += loss * batch.norm
                    update.weight_total += batch.norm
        finally:
            self.gate.write_end()
        return loss
