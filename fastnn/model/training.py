"""Training: the settings of a fit, the epoch loop, the history and early stopping.

fit checks every argument into one TrainingSettings, which then carries the
configuration and the optimizer's state down to the engine: Engine.updater(settings)
binds them once, and each batch is one compiled step.
"""
import collections
import contextlib
import dataclasses
import math
import threading

import numpy as np

from fastnn import _checks as check
from fastnn import _layout
from fastnn._engine import default_threads
from fastnn.model import inputs
from fastnn.optim import SGD, OptimizerState, make_optimizer

__all__ = ["Training", "TrainingSettings", "DivergenceError", "Batches", "run_epoch",
           "run_epochs", "epoch_complete", "threads"]


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient; the model keeps the last
    finite weights (those before the step that failed)."""


@dataclasses.dataclass
class TrainingSettings:
    """Everything one fit (or partial_fit) call trains with, checked.

    Attributes
    ----------
    epochs : int
        Passes over the data.
    batch_size : int or None
        Rows per step; None for the full batch.
    optimizer : SGD, Momentum or Adam
        The optimizer and its hyper-parameters.
    weight_decay : float
        L2 regularisation: the objective gains 0.5 weight_decay sum ||W||^2.
    decay_per_sample : bool
        Divide weight_decay, at each step, by the batch's total sample weight (its
        number of rows without weights): scikit-learn's alpha. fit leaves it False.
    shuffle : bool
        Reshuffle the rows (from the model's generator) every epoch.
    validation : tuple or None
        Checked (X_val, targets) to score after every epoch.
    patience : int or None
        Early stopping after this many epochs without a better val_loss.
    callbacks : tuple
        Callables (net, epoch, logs) run after every epoch.
    verbose : bool
        Print a line per epoch.
    n_threads : int
        The slices each step (with enough work) is split into, run on fastnn's own
        threads (see Engine.epoch).
    state : OptimizerState or None
        The optimizer's state the steps update; set by fit when training starts.
    """
    epochs: int = 1
    batch_size: object = None
    optimizer: SGD = SGD()
    weight_decay: float = 0.0
    decay_per_sample: bool = False
    shuffle: bool = False
    validation: object = None
    patience: object = None
    callbacks: tuple = ()
    verbose: bool = False
    n_threads: int = 1
    state: object = None

    @classmethod
    def checked(cls, net, epochs, batch_size, lr, optimizer, weight_decay, shuffle,
                validation_data, patience, callbacks, verbose, n_threads,
                optimizer_options):
        """The settings of fit's arguments, each checked (see MLP.fit).

        Parameters
        ----------
        net : MLP
            The model; validation_data is checked against it.
        epochs : int
            At least 1.
        batch_size : int or None
            At least 1; None for the full batch.
        lr : float or None
            The learning rate (None: the optimizer's default).
        optimizer : str or SGD, Momentum, Adam
            A name or an instance, as make_optimizer takes it.
        weight_decay : float
            A finite real number >= 0.
        shuffle : bool
            True or False, not merely truthy.
        validation_data : (X_val, y_val) as a tuple or list, or None
            Checked once here, finiteness of X_val included.
        patience : int or None
            At least 1; needs validation_data.
        callbacks : callable or iterable of callables
        verbose : bool
            Kept as given, unchecked.
        n_threads : int or None
            1 to 64, or None for threads(None).
        optimizer_options : dict
            Keyword options of the optimizer (momentum; beta1, beta2, eps).

        Returns
        -------
        TrainingSettings
            With state None; fit sets it when training starts.

        Raises
        ------
        TypeError
            If an argument, an optimizer option or a callback is of the wrong kind.
        ValueError
            If a value does not fit (range, shape, optimizer name; an optimizer
            instance with lr or options), or patience lacks validation_data.
        """
        settings = cls(
            epochs=check.integer("epochs", epochs, 1),
            batch_size=None if batch_size is None else check.integer(
                "batch_size", batch_size, 1),
            optimizer=make_optimizer(optimizer, lr, **optimizer_options),
            weight_decay=check.real("weight_decay", weight_decay, 0),
            shuffle=check.flag("shuffle", shuffle),
            validation=_validation(net, validation_data),
            patience=None if patience is None else check.integer("patience", patience, 1),
            verbose=verbose, n_threads=threads(n_threads))
        if settings.patience is not None and settings.validation is None:
            raise ValueError("patience (early stopping) needs validation_data")
        _representable(settings, net.dtype)
        settings.callbacks = _callbacks(callbacks)
        return settings


def threads(n_threads):
    """n_threads checked (an int in [1, 64]), or for None the default: BLAS's thread
    limit as the process set it (threadpoolctl, OMP_NUM_THREADS or
    OPENBLAS_NUM_THREADS), at most the CPUs the process may use; 1 when fastnn cannot
    see BLAS's threads."""
    if n_threads is None:
        return default_threads()
    return check.integer("n_threads", n_threads, 1, 64)


def _callbacks(callbacks):
    """callbacks as a tuple of callables: one callable, or any iterable of them."""
    if callable(callbacks):
        return (callbacks,)
    try:
        callbacks = tuple(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a callable or a sequence of callables; "
                        f"got {type(callbacks).__name__}") from None
    for callback in callbacks:
        if not callable(callback):
            raise TypeError(f"callbacks must be callables; got {callback!r}")
    return callbacks


def _representable(settings, dtype):
    """ValueError unless the optimizer's settings and the weight decay, which the
    compiled step reads in the model's dtype, neither overflow nor vanish in it, nor
    are subnormal in it (which the step reads as 0: a subnormal Adam eps would divide
    0 by 0)."""
    optimizer = settings.optimizer
    values = {field.name: getattr(optimizer, field.name) for field in (
        dataclasses.fields(optimizer) if dataclasses.is_dataclass(optimizer) else ())}
    values["weight_decay"] = settings.weight_decay
    for name, value in values.items():
        if isinstance(value, float):
            check.representable(name, value, dtype, flushed=True)


def _validation(net, validation_data):
    """(X, engine targets) for validation_data, checked once, or None."""
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise TypeError("validation_data must be a pair (X_val, y_val)")
    X_val = inputs.features(net, validation_data[0], "validation_data[0]")
    inputs.check_finite("validation_data[0]", X_val)
    return X_val, inputs.targets(net, validation_data[1], X_val.shape[0],
                                 "validation_data[1]")


class Training:
    """MLP's training methods (a mixin of fastnn.MLP)."""

    def _start_training(self):
        self._optimizer_state = None  # OptimizerState of the last fit
        # held by fit, partial_fit, fit_lbfgs, load_state_dict and reset_optimizer
        # (_session), and the thread holding it
        self._training, self._holder = threading.Lock(), None
        self.history = {"loss": [], "val_loss": [], "val_score": []}

    @contextlib.contextmanager
    def _session(self, action):
        """Hold the training lock for this thread while the block runs. RuntimeError
        if it is taken: by another thread, or by this thread's own running training
        (a call from one of its callbacks); action says what was refused, e.g.
        "train it"."""
        if not self._training.acquire(blocking=False):
            if self._holder == threading.get_ident():
                raise RuntimeError(
                    f"cannot {action} from inside its own training (a callback of "
                    f"its running fit): training calls do not nest; return True "
                    f"from the callback to stop the fit, then {action}")
            raise RuntimeError(f"this model is being trained in another thread; "
                               f"{action} when training is over (fastnn refuses "
                               f"concurrent training of one model)")
        self._holder = threading.get_ident()
        try:
            yield
        finally:
            self._holder = None
            self._training.release()

    @property
    def optimizer(self):
        """The optimizer of the last fit (SGD, Momentum or Adam), or None."""
        state = self._optimizer_state
        return None if state is None else state.optimizer

    @property
    def optimizer_state(self):
        """The optimizer's state (fastnn.optim.OptimizerState: the optimizer, its state
        arrays and step counter), or None before the first fit or after
        reset_optimizer. Its arrays are the model's own."""
        return self._optimizer_state

    @property
    def step_count(self):
        """The steps taken with the current optimizer (Adam's t); 0 after
        reset_optimizer."""
        state = self._optimizer_state
        return 0 if state is None else int(state.steps[0])

    def loss(self, X, y, sample_weight=None):
        """The mean loss on (X, y), weight decay excluded: the output's loss (binary
        cross-entropy, cross-entropy, mean squared error or Poisson deviance)
        averaged over the samples, weighted by sample_weight when given.

        Parameters
        ----------
        X, y : array-like
            Samples (m, n_features) and their targets, as fit takes them.
        sample_weight : array-like of shape (m,), optional
            Non-negative weights, not all 0: the loss is sum_i w_i l_i / sum_i w_i.

        Returns
        -------
        float

        Raises
        ------
        TypeError, ValueError
            As score.
        """
        X = inputs.features(self, X)
        targets = inputs.targets(self, y, X.shape[0])
        return self._engine.loss(X, targets,
                                 inputs.sample_weight(self, sample_weight, len(X)))

    def gradients(self, X, y, weight_decay=0.0, sample_weight=None):
        """The gradient of the mean loss on (X, y) by backprop, layer by layer.

        Parameters
        ----------
        X : array-like of shape (m, n_features)
        y : array-like
            Targets as fit takes them.
        weight_decay : float, default=0.0
            Adds the gradient of 0.5 weight_decay sum ||W||^2.
        sample_weight : array-like of shape (m,), optional
            Weights of the samples in the mean loss, as for loss.

        Returns
        -------
        list of (numpy.ndarray, numpy.ndarray)
            [(dW, db), ...] per layer, new arrays.

        Raises
        ------
        TypeError, ValueError
            If an argument is not what the model takes.
        """
        X = inputs.features(self, X)
        targets = inputs.targets(self, y, X.shape[0])
        weight_decay = check.real("weight_decay", weight_decay, 0)
        check.cast("weight_decay", np.array(weight_decay), self.dtype)
        weights = inputs.sample_weight(self, sample_weight, len(X))
        grads = np.empty_like(self._engine.params)
        self._engine.loss_and_gradients(X, targets, grads, weights, weight_decay)
        return _layout.layer_views(grads, self.layer_sizes)

    def fit(self, X, y, epochs=100, batch_size=32, lr=None, optimizer="sgd",
            weight_decay=0.0, shuffle=True, validation_data=None, patience=None,
            callbacks=(), verbose=False, sample_weight=None, n_threads=None,
            **optimizer_options):
        """Train by mini-batch gradient descent.

        The optimizer's state (velocity, Adam's moments, step count) carries over
        between calls while the optimizer's kind stays the same. history["loss"] is
        each epoch's mean training objective; once an epoch had validation data,
        val_loss and val_score have one entry per epoch (NaN for those without).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix (gathered a batch at a time), (m, n)
        y : array-like
            sigmoid: 0/1 labels (m,) or (m, k); softmax: labels (m,) in [0, k) or
            probability rows (m, k); identity: targets (m,) or (m, k); poisson:
            targets >= 0, (m,) or (m, k).
        epochs : int, default=100
            Passes over (X, y).
        batch_size : int or None, default=32
            Rows per step; None trains on the full batch.
        lr : float, optional
            The learning rate; None is 0.01 (0.001 for Adam).
        optimizer : {"sgd", "momentum", "nesterov", "adam"} or a fastnn.optim object
        weight_decay : float, default=0.0
            L2 regularisation: loss + 0.5 wd sum ||W||^2, biases excluded.
        shuffle : bool, default=True
            Reshuffle the rows every epoch (from the model's generator).
        validation_data : (X_val, y_val), optional
            Records val_loss and val_score after every epoch.
        patience : int, optional
            Stop after that many epochs without a better val_loss, restoring the
            best weights (needs validation_data).
        callbacks : callable or sequence of callables, default=()
            callback(net, epoch, logs) after every epoch; one returning True stops.
        verbose : bool, default=False
            Print a line per epoch.
        sample_weight : array-like of shape (m,), optional
            Weights >= 0, not all 0: each batch's loss is sum_i w_i l_i / sum_i w_i.
        n_threads : int, optional
            Threads per step (1 to 64): a step with enough work is split into
            n_threads slices of the batch, run on fastnn's own threads with BLAS on one
            thread, their gradients summed in a fixed order, so that the same
            n_threads and seed give the same bits every run. None: BLAS's thread limit
            (threadpoolctl, OMP_NUM_THREADS), at most the CPUs the process may use.
        **optimizer_options
            momentum; or beta1, beta2, eps.

        Returns
        -------
        dict of list
            self.history.

        Raises
        ------
        TypeError, ValueError
            For a bad argument, before anything changes.
        DivergenceError
            If the loss, a gradient or an update stops being finite (see README).
        RuntimeError
            If the model is being trained (in another thread, or this fit's own).
        """
        epochs = check.integer("epochs", epochs, 1)
        return self._train(X, y, sample_weight, epochs, batch_size, lr, optimizer,
                           weight_decay, shuffle, validation_data, patience, callbacks,
                           verbose, n_threads, optimizer_options)

    def partial_fit(self, X, y, batch_size=32, lr=None, optimizer="sgd", weight_decay=0.0,
                    shuffle=True, sample_weight=None, n_threads=None, **optimizer_options):
        """One pass (one epoch) over (X, y), continuing from the current state.

        Parameters
        ----------
        X, y, batch_size, lr, optimizer, weight_decay, shuffle, sample_weight, n_threads
            As for fit.
        **optimizer_options
            As for fit.

        Returns
        -------
        dict of list
            self.history, one epoch longer.

        Raises
        ------
        TypeError, ValueError, DivergenceError, RuntimeError
            As fit.
        """
        return self._train(X, y, sample_weight, 1, batch_size, lr, optimizer, weight_decay,
                           shuffle, None, None, (), False, n_threads, optimizer_options)

    def _train(self, X, y, sample_weight, *arguments):
        # every argument is checked before anything changes
        X = inputs.features(self, X, sparse=True)
        inputs.check_finite("X", X)
        targets = inputs.targets(self, y, X.shape[0])
        weights = inputs.sample_weight(self, sample_weight, X.shape[0])
        settings = TrainingSettings.checked(self, *arguments)
        with self._session("train it"):
            state = self._optimizer_state
            if state is None or state.optimizer.name != settings.optimizer.name:
                state = OptimizerState(settings.optimizer, self._engine.n_params,
                                       self.dtype)
            settings.state = state
            update = self._engine.updater(settings)  # refuses a misfit before any change
            state.optimizer = settings.optimizer
            self._optimizer_state = state
            return run_epochs(self, X, targets, settings, update, weights)

    def reset_optimizer(self):
        """Forget the optimizer's state (velocity, moments, step count).

        Raises
        ------
        RuntimeError
            During training (from a callback, or another thread): the running fit
            keeps its optimizer's state until it ends.
        """
        with self._session("reset its optimizer"):
            self._optimizer_state = None


def run_epochs(net, X, targets, settings, update, weights=None):
    """Train net on checked (X, targets) as settings say; returns net.history.

    Each epoch takes one step per batch, then (with validation data) the
    validation loss and score, appends to the history, prints (verbose), runs
    every callback and asks the early stopping. Training stops after
    settings.epochs epochs, or earlier when a callback returns True or patience
    runs out; with patience, the weights of the best val_loss are restored.

    Parameters
    ----------
    net : MLP
        The model trained in place; its engine, rng and history are used.
    X, targets, weights : numpy.ndarray (X may be inputs.SparseRows; weights None)
        Checked by inputs.features (and finite), targets and sample_weight.
    settings : TrainingSettings
        Checked, with its state (an OptimizerState) set.
    update : Update
        net.engine.updater(settings): what each step updates with.

    Returns
    -------
    dict of list
        net.history, one entry longer per epoch run (epochs count on from
        those already in it).

    Raises
    ------
    DivergenceError
        If a step's loss or gradient is not finite, or an update overflows.
    """
    engine = net.engine
    batches = Batches(X, targets, settings.batch_size, settings.shuffle, net.rng, weights)
    stopper = EarlyStopping(settings.patience) if settings.patience else None
    for _ in range(settings.epochs):
        epoch = len(net.history["loss"]) + 1
        update.start_epoch()  # before the try: a tally of the last epoch is never read
        try:
            logs = {"loss": run_epoch(engine, update, batches, epoch,
                                      settings.optimizer.lr, settings.n_threads)}
            if settings.validation is not None:
                logs["val_loss"] = engine.loss(*settings.validation)
                logs["val_score"] = net._score(*settings.validation)
            engine.write(lambda: record(net.history, epoch, logs))  # whole, for saves
        except KeyboardInterrupt:  # the history keeps every epoch whose steps all ran
            if epoch_complete(update, batches):
                loss = update.epoch_loss
                engine.write(lambda: record(net.history, epoch, {"loss": loss}))
            raise
        if settings.verbose:
            print(f"epoch {epoch}: " + "  ".join(f"{k} {v:.6g}" for k, v in logs.items()))
        stop = any([callback(net, epoch, logs) is True for callback in settings.callbacks])
        if stopper is not None and stopper.after(logs["val_loss"], engine.params):
            stop = True
        if stop:
            break
    if stopper is not None:
        engine.assign(stopper.best_params)  # never under a running prediction
    return net.history


def run_epoch(engine, update, batches, epoch, lr, n_threads=1):
    """One pass of steps over the batches: one compiled call (Engine.epoch) for dense
    X, a call per batch for sparse X.

    Parameters
    ----------
    engine : fastnn._engine.Engine
        The model's engine.
    update : Update
        engine.updater(settings), its epoch tally zeroed by the caller
        (update.start_epoch()) before; each step adds to it (see epoch_complete).
    batches : Batches
        The epoch's batches.
    epoch : int
        The epoch's number, for the messages.
    lr : float
        The learning rate, for the messages.
    n_threads : int, default=1
        Threads per step (see MLP.fit).

    Returns
    -------
    float
        The epoch's mean training objective: the batches' returns weighted by their
        rows (by their total sample weight when weighted).

    Raises
    ------
    DivergenceError
        If a step's loss or gradient is not finite, or an update overflowed.
    """
    if isinstance(batches.X, inputs.SparseRows):
        for X_in, t_in, w_in in batches:
            _check_step(engine.step(X_in, t_in, update, w_in), epoch, lr)
    else:
        _check_step(engine.epoch(batches.X, batches.targets, update, batches.size,
                                 batches.rng, batches.weights, n_threads), epoch, lr)
    return update.epoch_loss


def _check_step(loss, epoch, lr):
    """DivergenceError for a step's non-finite return."""
    if loss == -math.inf:
        raise DivergenceError(
            f"training diverged in epoch {epoch}: an update overflowed the weights "
            f"(lr={lr:g}), which are no longer finite; use a smaller learning rate "
            f"and re-initialise or load the model.")
    if not math.isfinite(loss):
        raise DivergenceError(
            f"training diverged in epoch {epoch}: the loss or its gradient became "
            f"{loss} (lr={lr:g}); try a smaller learning rate. The model keeps the "
            f"weights from before that step.")


def epoch_complete(update, batches):
    """Whether every step of the epoch was taken, by the update's compiled tally
    (which an interrupt cannot separate from the steps): after a KeyboardInterrupt,
    the epoch's loss is then update.epoch_loss."""
    return update.batches == batches.count


class Batches:
    """The batches of one epoch, afresh each epoch: in order, or each epoch in a new
    permutation drawn from rng (rng.permutation(m)). run_epoch hands a dense X and rng
    to Engine.epoch, which draws that permutation and gathers each batch itself, in
    compiled code; iterating draws it (order()) and gathers the batches in Python
    (run_epoch does so for a sparse X, into a dense buffer, one batch at a time), into
    buffers made on the first iteration.

    Each batch is a triple (X rows, their targets, their weights or None) of
    batch_size rows, the last one shorter when batch_size does not divide m. In
    order and dense, they are views of the arrays; otherwise, views of the
    buffers, which the next batch overwrites.

    Parameters
    ----------
    X : numpy.ndarray of shape (m, n_features), or inputs.SparseRows
        The checked samples.
    targets : numpy.ndarray
        Their checked targets, m rows: (m,) labels or (m, k).
    batch_size : int or None
        Rows per batch; None, or anything above m, makes one batch of all m.
    shuffle : bool
        Draw a new order of the rows every epoch.
    rng : numpy.random.Generator
        Draws the permutations (only when shuffling).
    weights : numpy.ndarray of shape (m,), optional
        The samples' weights.

    Attributes
    ----------
    m : int
        The number of samples.
    count : int
        The number of batches in an epoch.
    """

    def __init__(self, X, targets, batch_size, shuffle, rng, weights=None):
        self.X, self.targets, self.weights, self.m = X, targets, weights, X.shape[0]
        self.rng = rng if shuffle else None
        self.size = self.m if batch_size is None else min(batch_size, self.m)
        self.count = -(-self.m // self.size)
        self.buffers = None

    def order(self):
        """The epoch's order of the rows: a new permutation (np.intp) drawn from rng
        when shuffling, else None (in order). Iterating draws it itself."""
        return None if self.rng is None else self.rng.permutation(self.m).astype(
            np.intp, copy=False)

    def __iter__(self):
        X, targets, weights, size = self.X, self.targets, self.weights, self.size
        if self.rng is None and not isinstance(X, inputs.SparseRows):
            for start in range(0, self.m, size):
                part = slice(start, start + size)
                yield X[part], targets[part], None if weights is None else weights[part]
            return
        order = self.order()
        if order is None:
            order = np.arange(self.m)
        if self.buffers is None:
            self.buffers = [np.empty((self.size,) + a.shape[1:], a.dtype)
                            for a in (X, targets, weights) if a is not None]
        X_batch, t_batch = self.buffers[:2]
        for start in range(0, self.m, size):
            rows = order[start:start + size]
            n = len(rows)
            yield (inputs.gather_rows(X, rows, X_batch[:n]),
                   np.take(targets, rows, axis=0, out=t_batch[:n]),
                   None if weights is None else np.take(weights, rows,
                                                        out=self.buffers[2][:n]))


def record(history, epoch, logs):
    """Bring history up to epoch with an epoch's logs. val_* stay empty until an epoch
    has validation data; from then on they hold one entry per epoch (NaN where none).

    Idempotent: a list that already holds `epoch` entries is left alone, so that a
    record cut short by an interrupt can be completed by calling it again.

    The lists are extended in place, all of them inside one C loop (map over
    list.extend, drained by a deque), between whose calls no bytecode runs: a signal
    handler that saves the model while its thread records sees the epoch's entries
    all or none.

    Parameters
    ----------
    history : dict of list
        "loss", "val_loss" and "val_score" lists, updated in place.
    epoch : int
        The epoch's number, counted from 1; a list shorter than epoch - 1 is
        first padded with NaN.
    logs : dict of str to float
        "loss", and "val_loss" and "val_score" for an epoch with validation.

    Returns
    -------
    None
    """
    validated = "val_loss" in logs or history["val_loss"]
    keys = [key for key in (history if validated else ["loss"])
            if len(history[key]) < epoch]
    tails = [[math.nan] * (epoch - 1 - len(history[key])) + [logs.get(key, math.nan)]
             for key in keys]
    collections.deque(map(list.extend, [history[key] for key in keys], tails), maxlen=0)


class EarlyStopping:
    """Keeps the parameters of the best val_loss; says stop after `patience` epochs
    without a better one.

    Better means strictly lower; a NaN val_loss is never better. The best
    parameters are kept in best_params (a copy), its val_loss in best.

    Parameters
    ----------
    patience : int
        The number of epochs in a row without a better val_loss after which
        after() says stop; at least 1.
    """

    def __init__(self, patience):
        self.patience, self.best, self.best_params, self.waited = patience, None, None, 0

    def after(self, val_loss, params):
        """Record an epoch's val_loss (params: the weights after it); True to stop.

        Parameters
        ----------
        val_loss : float
            The validation loss after the epoch.
        params : numpy.ndarray
            The model's flat parameters after the epoch; copied when val_loss
            is the best yet (the first always is).

        Returns
        -------
        bool
            True when `patience` epochs in a row have now passed without a
            better val_loss, else False (always False after an improvement).
        """
        if self.best is None or val_loss < self.best:
            self.best, self.best_params, self.waited = val_loss, params.copy(), 0
            return False
        self.waited += 1
        return self.waited >= self.patience
