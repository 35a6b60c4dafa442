"""Label-shift adaptation without labels: estimate a new batch's class mix, check it is plausible, re-weight.

When a model meets data whose class mix differs from its training data (another shop's reviews with more
5-star ratings, a catalog with more watches), its posteriors lean towards the training mix. Re-weighting a
posterior by ``new_prior / train_prior`` (Bayes' rule, :func:`reweight`) corrects that once the new mix is
known. Three estimators of the mix:

- ``em``: EM re-estimation (Saerens, Latinne & Decaestecker 2002) on posteriors first calibrated by
  bias-corrected temperature scaling (BCTS, Alexandari, Kundaje & Shrikumar 2020), fitted on the training
  data's validation part: uncalibrated posteriors make EM run away. Each class bias is shrunk by its
  bootstrap variance (:func:`fit_bcts`): a bias fitted on a dozen validation rows is noise;
- ``bbse``: black-box shift estimation (Lipton, Wang & Smola 2018): solve ``C w = mean target prediction``
  with the (soft) confusion matrix ``C`` from the validation part;
- ``rlls``: regularized learning under label shift (Azizzadenesheli et al. 2019): BBSE as a constrained,
  regularized least-squares problem, steadier on small batches.

:func:`fit_label_shift` picks the estimator, or none at all, by how each does on many simulated Dirichlet
shifts of the validation part (at fit time); :meth:`LabelShift.adapt` applies it with a bootstrap interval
and guards (too few rows, EM that does not converge, an estimate far outside its interval, a domain the
classes cannot explain). Plain :func:`adapt_priors` (uncalibrated EM) serves models saved before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from scipy.stats import chi2
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

#: Fewer rows than this give prior estimates too noisy to act on.
MIN_ROWS = 30
ESTIMATORS = ("em", "bbse", "rlls")
#: Adaptation may lower accuracy on a simulated shift by at most this much for an estimator to be chosen.
TOLERANCE = 0.01
#: A shift is acted on only when the likelihood-ratio test rejects "no shift" at this level.
SHIFT_LEVEL = 0.01
#: An estimate is implausible when a class share lies further than this many interval widths outside it.
OUTSIDE_WIDTHS = 1.0
#: Bootstrap resamples that measure how noisy each BCTS class bias is (the bias is shrunk by that noise).
BIAS_RESAMPLES = 20
_FLOOR = 1e-12


@dataclass
class PriorShift:
    """What adaptation found: priors of the training data and estimated on the new data, and whether it was used."""

    applied: bool
    converged: bool
    iterations: int
    n_rows: int
    train_priors: list[float]
    estimated_priors: list[float]
    log_likelihood_gain: float
    reason: str
    estimator: str = "em"
    interval: list[list[float]] | None = None
    domain_shift: float | None = None
    domain_limit: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# Bayes re-weighting and the three estimators
# --------------------------------------------------------------------------------------------------


def reweight(proba: np.ndarray, train_priors: np.ndarray, new_priors: np.ndarray) -> np.ndarray:
    """Posteriors under ``new_priors``: ``p(k|x) * new(k) / train(k)``, renormalised per row."""
    weights = np.clip(new_priors, _FLOOR, None) / np.clip(train_priors, _FLOOR, None)
    scaled = np.asarray(proba, dtype=float) * weights
    return scaled / np.clip(scaled.sum(axis=1, keepdims=True), _FLOOR, None)


def _log_likelihood(proba: np.ndarray, train_priors: np.ndarray, priors: np.ndarray) -> float:
    """Mean log-likelihood of the rows under ``priors`` (up to a constant): ``log sum_k p(k|x) prior(k)/train(k)``."""
    ratio = np.clip(priors, _FLOOR, None) / np.clip(train_priors, _FLOOR, None)
    return float(np.mean(np.log(np.clip(proba @ ratio, _FLOOR, None))))


def em_priors(
    proba: np.ndarray, train_priors: np.ndarray, max_iter: int = 500, tol: float = 1e-6
) -> tuple[np.ndarray, bool, int, float]:
    """EM estimate of the class priors of ``proba``'s rows: (priors, converged, iterations, log-likelihood gain).
    Converged means the largest prior change fell below ``tol`` within ``max_iter`` steps."""
    priors = np.asarray(train_priors, dtype=float).copy()
    start = _log_likelihood(proba, train_priors, priors)
    converged, iterations = False, 0
    while not converged and iterations < max_iter:
        updated = reweight(proba, train_priors, priors).mean(axis=0)
        converged = float(np.abs(updated - priors).max()) < tol
        priors, iterations = updated, iterations + 1
    return priors, converged, iterations, _log_likelihood(proba, train_priors, priors) - start


def shift_test(calibrated: np.ndarray, source: np.ndarray, priors: np.ndarray) -> tuple[float, float]:
    """Likelihood-ratio test of "the batch has the source mix" against ``priors``: (log-likelihood gain per
    row, p-value from chi-square with classes - 1 degrees of freedom)."""
    gain = _log_likelihood(calibrated, source, priors) - _log_likelihood(calibrated, source, source)
    return gain, float(chi2.sf(2 * len(calibrated) * max(gain, 0.0), len(source) - 1))


def expected_gain(raw: np.ndarray, adapted: np.ndarray) -> tuple[float, float]:
    """Expected accuracy change from switching the argmax decisions of ``raw`` to those of ``adapted``, taking
    the adapted posteriors as true: (gain, its standard error ``sqrt(changed rows) / rows``)."""
    before, after = np.asarray(raw).argmax(1), adapted.argmax(1)
    rows = np.arange(len(adapted))
    gain = float((adapted[rows, after] - adapted[rows, before]).mean())
    return gain, float(np.sqrt(np.sum(before != after)) / len(adapted))


def worth_adapting(raw: np.ndarray, calibrated: np.ndarray, source: np.ndarray, priors: np.ndarray) -> tuple[bool, str]:
    """Whether to act on ``priors``: the likelihood-ratio test rejects "no shift", and the expected accuracy gain
    exceeds twice its standard error (or no argmax decision changes); with the reason (one line)."""
    _, p_value = shift_test(calibrated, source, priors)
    if p_value >= SHIFT_LEVEL:
        return False, f"no clear class-mix shift (likelihood-ratio p = {p_value:.2g} >= {SHIFT_LEVEL})"
    gain, error = expected_gain(raw, reweight(calibrated, source, priors))
    if error == 0:
        return True, "no decision changes; the distributions follow the new mix"
    if gain <= 2 * error:
        return False, f"the expected accuracy gain {gain:+.3f} is within twice its standard error ({error:.3f})"
    return True, f"expected accuracy gain {gain:+.3f} (standard error {error:.3f})"


def soft_confusion(proba: np.ndarray, y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """``C[i, j] = mean over labelled rows of p(i|x) * [y = j]`` (columns sum to the class shares)."""
    onehot = np.eye(n_classes)[np.asarray(y_index, dtype=int)]
    return np.asarray(proba, dtype=float).T @ onehot / len(onehot)


def _to_priors(weights: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Class priors from importance weights ``w = new / source`` (negative parts clipped, renormalised)."""
    priors = np.clip(weights, 0, None) * source
    return priors / priors.sum() if priors.sum() > 0 else source.copy()


def bbse_priors(proba: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """BBSE: solve ``C w = mean_target p(.|x)`` for the weights ``w`` (least squares), priors ``w * source``."""
    source = confusion.sum(axis=0)
    weights = np.linalg.lstsq(confusion, np.asarray(proba, dtype=float).mean(axis=0), rcond=None)[0]
    return _to_priors(weights, source)


def rlls_priors(proba: np.ndarray, confusion: np.ndarray, strength: float | None = None) -> np.ndarray:
    """RLLS: ``theta = argmin ||C theta - b|| + strength * ||theta||`` with ``b = mean_target p - C 1``,
    ``w = 1 + theta >= 0`` and ``sum source * w = 1``; ``strength`` defaults to ``1 / sqrt(rows)`` (the noise
    scale of ``b``)."""
    proba = np.asarray(proba, dtype=float)
    source = confusion.sum(axis=0)
    b = proba.mean(axis=0) - confusion.sum(axis=1)
    strength = 1 / np.sqrt(len(proba)) if strength is None else strength

    def objective(theta: np.ndarray) -> float:
        return float(np.sqrt(np.sum((confusion @ theta - b) ** 2) + 1e-12) + strength * np.sqrt(np.sum(theta**2) + 1e-12))

    result = minimize(
        objective,
        np.zeros(len(source)),
        method="SLSQP",
        bounds=[(-1.0, None)] * len(source),
        constraints=[{"type": "eq", "fun": lambda theta: float(source @ (1 + theta) - 1)}],
    )
    return _to_priors(1 + result.x, source)


# --------------------------------------------------------------------------------------------------
# Calibration (BCTS)
# --------------------------------------------------------------------------------------------------


@dataclass
class Calibration:
    """Bias-corrected temperature scaling: ``softmax(log p / temperature + bias)``."""

    temperature: float
    bias: list[float]

    def apply(self, proba: np.ndarray) -> np.ndarray:
        logits = np.log(np.clip(np.asarray(proba, dtype=float), _FLOOR, None))
        return softmax(logits / self.temperature + np.asarray(self.bias), axis=1)


def _bcts(logits: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """[log temperature, biases...] minimising the log-loss of ``softmax(logits / temperature + bias)``."""
    rows = np.arange(len(logits))
    onehot = np.zeros_like(logits)
    onehot[rows, y_index] = 1.0

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        """The log-loss and its exact gradient (finite differences cost one loss per class and step)."""
        inverse_temperature = np.exp(-params[0])
        scaled = log_softmax(logits * inverse_temperature + params[1:], axis=1)
        loss = -scaled[rows, y_index].mean() + 1e-6 * np.sum(params[1:] ** 2)
        residual = (np.exp(scaled) - onehot) / len(logits)  # d loss / d scaled logits
        grad_temperature = -np.sum(residual * logits) * inverse_temperature
        return float(loss), np.concatenate([[grad_temperature], residual.sum(axis=0) + 2e-6 * params[1:]])

    return minimize(loss_and_grad, np.zeros(logits.shape[1] + 1), jac=True, method="L-BFGS-B").x


def fit_bcts(proba: np.ndarray, y_index: np.ndarray, resamples: int = BIAS_RESAMPLES, seed: int = 0) -> Calibration:
    """The temperature and per-class biases that minimise the log-loss of ``proba`` on labels ``y_index``, each
    bias's offset from the median bias shrunk by its bootstrap variance over ``resamples`` resamples of the rows
    (positive-part James-Stein per class: ``d * max(0, 1 - var(d) / d^2)``). A class with few validation rows
    gets a bias that is mostly noise; unshrunk, it moves decisions between look-alike classes on new products
    (``resamples=0``: no shrinkage)."""
    logits = np.log(np.clip(np.asarray(proba, dtype=float), _FLOOR, None))
    y_index = np.asarray(y_index, dtype=int)
    params = _bcts(logits, y_index)
    bias = params[1:] - np.median(params[1:])
    if resamples > 1:
        rng = np.random.default_rng(seed)
        draws = [_bcts(logits[rows], y_index[rows])[1:] for rows in rng.integers(0, len(logits), (resamples, len(logits)))]
        variance = np.var([draw - np.median(draw) for draw in draws], axis=0)
        bias = bias * np.clip(1 - variance / np.maximum(bias**2, _FLOOR), 0, 1)
    return Calibration(float(np.exp(params[0])), [float(b) for b in bias])


# --------------------------------------------------------------------------------------------------
# The fitted adapter: estimator choice, calibration, confusion matrix, domain reference
# --------------------------------------------------------------------------------------------------


def _estimate(estimator: str, calibrated: np.ndarray, source: np.ndarray, confusion: np.ndarray) -> tuple[np.ndarray, bool, int]:
    """(priors, converged, iterations) of ``estimator`` on calibrated posteriors."""
    if estimator == "em":
        priors, converged, iterations, _ = em_priors(calibrated, source)
        return priors, converged, iterations
    if estimator == "bbse":
        return bbse_priors(calibrated, confusion), True, 1
    if estimator == "rlls":
        return rlls_priors(calibrated, confusion), True, 1
    raise ValueError(f"unknown label-shift estimator {estimator!r}; use one of {', '.join(ESTIMATORS)}")


def bootstrap_priors(
    estimate: Callable[[np.ndarray], np.ndarray], n_rows: int, resamples: int = 100, seed: int = 0, confidence: float = 0.95
) -> np.ndarray:
    """Percentile-bootstrap interval of a class-mix estimate over rows: array (classes, 2) of [low, high]."""
    rng = np.random.default_rng(seed)
    draws = np.array([estimate(rng.integers(0, n_rows, n_rows)) for _ in range(resamples)])
    tail = (1 - confidence) / 2 * 100
    return np.stack([np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0)], axis=1)


def outside_interval(priors: np.ndarray, interval: np.ndarray, widths: float = OUTSIDE_WIDTHS) -> np.ndarray:
    """Classes whose share lies more than ``widths`` interval widths (at least 0.02) below or above the interval."""
    width = np.maximum(interval[:, 1] - interval[:, 0], 0.02)
    return np.flatnonzero((priors < interval[:, 0] - widths * width) | (priors > interval[:, 1] + widths * width))


def shifted_rows(y_index: np.ndarray, priors: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Rows (with replacement) whose class mix is drawn from ``priors`` (classes without rows get none)."""
    present = np.bincount(y_index, minlength=len(priors)) > 0
    target = np.where(present, priors, 0)
    counts = rng.multinomial(size, target / target.sum())
    return np.concatenate([rng.choice(np.flatnonzero(y_index == k), n) for k, n in enumerate(counts) if n])


@dataclass
class DomainReference:
    """Labelled validation embeddings, projected to a few principal directions, to test whether a batch is
    explained by re-weighting the training classes (a kernel two-sample distance, as in the drift report)."""

    mean: np.ndarray
    components: np.ndarray
    points: np.ndarray
    y_index: np.ndarray
    bandwidth: float
    limit: float = np.inf

    def project(self, vectors) -> np.ndarray:
        """Rows (dense or sparse) L2-normalised, centred on the reference mean, projected, normalised again."""
        unit = normalize(vectors)
        return _unit(np.asarray(unit @ self.components.T) - self.mean @ self.components.T)

    def distance(self, vectors, new_over_source: np.ndarray) -> float:
        """Squared MMD between the batch and the reference re-weighted by ``new_over_source`` per class."""
        return weighted_mmd(self.points, new_over_source[self.y_index], self.project(vectors), self.bandwidth)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "mean": self.mean.astype(np.float32),
            "components": self.components.astype(np.float32),
            "points": self.points.astype(np.float32),
            "y_index": self.y_index.astype(np.int32),
            "scalars": np.array([self.bandwidth, self.limit]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DomainReference:
        bandwidth, limit = (float(v) for v in arrays["scalars"])
        return cls(
            np.asarray(arrays["mean"], float),
            np.asarray(arrays["components"], float),
            np.asarray(arrays["points"], float),
            np.asarray(arrays["y_index"], int),
            bandwidth,
            limit,
        )


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), _FLOOR, None)


def weighted_mmd(reference: np.ndarray, weights: np.ndarray, current: np.ndarray, bandwidth: float) -> float:
    """Squared maximum mean discrepancy (RBF kernel) between the ``weights``-weighted reference and ``current``."""

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        squared = np.sum(a**2, 1)[:, None] + np.sum(b**2, 1)[None, :] - 2 * a @ b.T
        return np.exp(-np.maximum(squared, 0) / bandwidth)

    w = np.asarray(weights, dtype=float) / np.sum(weights)
    u = np.full(len(current), 1 / len(current))
    return float(w @ kernel(reference, reference) @ w + u @ kernel(current, current) @ u - 2 * w @ kernel(reference, current) @ u)


def domain_reference(vectors, y_index: np.ndarray, dims: int = 16, max_rows: int = 400, seed: int = 0) -> DomainReference:
    """A :class:`DomainReference` from labelled validation embeddings (dense, or sparse such as TF-IDF): their
    ``dims`` leading singular directions and at most ``max_rows`` of them, projected."""
    unit = normalize(vectors)
    mean = np.asarray(unit.mean(axis=0), dtype=float).ravel()
    dims = max(1, min(dims, unit.shape[1] - 1, unit.shape[0] - 1))
    components = TruncatedSVD(n_components=dims, random_state=seed).fit(unit).components_
    reference = DomainReference(mean, components, np.zeros((0, dims)), np.zeros(0, dtype=int), 1.0)
    keep = np.sort(np.random.default_rng(seed).permutation(unit.shape[0])[:max_rows])
    points = reference.project(unit[keep])
    squared = np.sum((points[:, None] - points[None]) ** 2, axis=2)
    reference.points, reference.y_index = points, np.asarray(y_index, int)[keep]
    reference.bandwidth = max(float(np.median(squared[np.triu_indices_from(squared, 1)])), _FLOOR)
    return reference


@dataclass
class LabelShift:
    """Fitted label-shift adaptation of one classifier (see the module docstring); JSON + arrays, no pickle."""

    estimator: str
    source_priors: list[float]
    calibration: Calibration
    confusion: list[list[float]]
    simulation: dict = field(default_factory=dict)
    domain: DomainReference | None = None

    def config(self) -> dict:
        """What goes into the model's ``config.json``."""
        return {
            "estimator": self.estimator,
            "source_priors": self.source_priors,
            "temperature": self.calibration.temperature,
            "bias": self.calibration.bias,
            "confusion": self.confusion,
            "simulation": self.simulation,
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {} if self.domain is None else self.domain.to_arrays()

    @classmethod
    def restore(cls, config: dict, arrays: dict[str, np.ndarray]) -> LabelShift:
        domain = DomainReference.from_arrays(arrays) if "points" in arrays else None
        return cls(
            config["estimator"],
            [float(p) for p in config["source_priors"]],
            Calibration(float(config["temperature"]), [float(b) for b in config["bias"]]),
            [[float(v) for v in row] for row in config["confusion"]],
            config.get("simulation", {}),
            domain,
        )

    def estimate(self, proba: np.ndarray, estimator: str | None = None) -> tuple[np.ndarray, bool, int]:
        """(priors, converged, iterations) of ``estimator`` (the chosen one by default) on raw posteriors."""
        calibrated = self.calibration.apply(proba)
        return _estimate(estimator or self.estimator, calibrated, np.asarray(self.source_priors), np.asarray(self.confusion))

    def adapt(
        self,
        proba: np.ndarray,
        vectors: np.ndarray | None = None,
        resamples: int = 100,
        seed: int = 0,
        names: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, PriorShift]:
        """Posteriors adapted to the batch's estimated class mix, or unchanged with the reason (one line).

        ``vectors`` are the batch's embeddings of the encoder the domain reference was fitted on; ``names``
        the classes' names, in column order, for the reasons (default: ``class <column>``)."""
        proba = np.asarray(proba, dtype=float)
        source = np.asarray(self.source_priors)
        n = len(proba)

        def report(applied: bool, reason: str, **values) -> PriorShift:
            base = {"converged": True, "iterations": 0, "estimated_priors": source.tolist(), "log_likelihood_gain": 0.0}
            merged = base | values
            return PriorShift(applied, n_rows=n, train_priors=source.tolist(), reason=reason, estimator=self.estimator, **merged)

        if self.estimator == "none":
            best = self.simulation.get("reason", "no estimator kept accuracy within 0.01 on simulated shifts")
            return proba, report(False, f"adaptation is off for this model: {best}")
        if n < MIN_ROWS:
            return proba, report(False, f"only {n} rows; adaptation needs {MIN_ROWS}")
        calibrated = self.calibration.apply(proba)
        priors, converged, iterations = self.estimate(proba)
        gain = shift_test(calibrated, source, priors)[0]
        found = {
            "converged": converged,
            "iterations": iterations,
            "estimated_priors": priors.tolist(),
            "log_likelihood_gain": gain,
        }
        if not converged:
            return proba, report(False, f"EM did not converge in {iterations} iterations; posteriors left unchanged", **found)
        act, why = worth_adapting(proba, calibrated, source, priors)
        if not act:
            return proba, report(False, f"{why}; posteriors left unchanged", **found)
        interval = bootstrap_priors(lambda rows: self.estimate(proba[rows])[0], n, resamples, seed)
        found["interval"] = interval.tolist()
        cross = [e for e in ("bbse", "em") if e != self.estimator][0]
        other = self.estimate(proba, cross)[0]
        far = outside_interval(other, interval)
        if len(far):
            k = int(far[0])
            name = f"'{names[k]}'" if names is not None else f"class {k}"
            return proba, report(
                False,
                f"implausible class mix: {self.estimator} puts {name} at {priors[k]:.2f} (interval {interval[k, 0]:.2f}-"
                f"{interval[k, 1]:.2f}) but {cross} at {other[k]:.2f}; posteriors left unchanged",
                **found,
            )
        if self.domain is not None and vectors is not None:
            distance = self.domain.distance(vectors, priors / np.clip(source, _FLOOR, None))
            found |= {"domain_shift": distance, "domain_limit": self.domain.limit}
            if distance > self.domain.limit:
                return proba, report(
                    False,
                    f"these rows are too far from the training domain (embedding distance {distance:.3f} > {self.domain.limit:.3f}, "
                    "beyond any simulated class-mix shift); the classifier's posteriors are unreliable here, left unchanged",
                    **found,
                )
        return reweight(calibrated, source, priors), report(True, f"adapted with {self.estimator}: {why}", **found)


def _simulate(
    proba: np.ndarray, y_index: np.ndarray, draws: list, calibration: Calibration, confusion: np.ndarray
) -> dict[str, dict[str, float]]:
    """Each estimator's mean absolute prior error and mean / worst accuracy change from adapting (guarded by
    :func:`worth_adapting`) over the simulated shifts ``draws`` (rows, realised class mix)."""
    source = confusion.sum(axis=0)
    results = {name: {"prior_mae": [], "accuracy_change": []} for name in ESTIMATORS}
    for rows, realised in draws:
        raw_accuracy = float((proba[rows].argmax(1) == y_index[rows]).mean())
        calibrated = calibration.apply(proba[rows])
        for name in ESTIMATORS:
            priors = _estimate(name, calibrated, source, confusion)[0]
            act = worth_adapting(proba[rows], calibrated, source, priors)[0]
            adapted = reweight(calibrated, source, priors).argmax(1) if act else proba[rows].argmax(1)
            results[name]["prior_mae"].append(float(np.abs(priors - realised).mean()))
            results[name]["accuracy_change"].append(float((adapted == y_index[rows]).mean()) - raw_accuracy)
    return {
        name: {
            "prior_mae": float(np.mean(r["prior_mae"])),
            "mean_accuracy_change": float(np.mean(r["accuracy_change"])),
            "worst_accuracy_change": float(np.min(r["accuracy_change"])),
        }
        for name, r in results.items()
    }


def fit_label_shift(
    proba: np.ndarray,
    y_index: np.ndarray,
    vectors: np.ndarray | None = None,
    n_shifts: int = 40,
    concentration: float = 1.0,
    seed: int = 0,
    bias_resamples: int = BIAS_RESAMPLES,
) -> LabelShift:
    """Fit label-shift adaptation on the validation part's raw posteriors ``proba`` and labels ``y_index``.

    The part is split in two halves: BCTS and the confusion matrix are fitted on one; ``n_shifts`` class mixes
    drawn from ``Dirichlet(concentration)`` resample the other, and each estimator's mean absolute prior
    error and accuracy change from adapting are recorded. The estimator with the best mean accuracy change
    whose worst change stays above ``-TOLERANCE`` is chosen (``none`` when no estimator qualifies); BCTS
    with shrunk class biases is tried first, unshrunk only when no estimator is safe with it. Then
    calibration and confusion are refitted on the whole part. With ``vectors`` (validation embeddings)
    a :class:`DomainReference` is kept whose limit is the largest distance seen on the simulated shifts,
    doubled. ``bias_resamples``: see :func:`fit_bcts`."""
    proba, y_index = np.asarray(proba, dtype=float), np.asarray(y_index, dtype=int)
    k = proba.shape[1]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(proba))
    fit_rows, sim_rows = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
    size = int(np.clip(len(sim_rows), 100, 1000))
    draws = []
    for _ in range(n_shifts):
        rows = sim_rows[shifted_rows(y_index[sim_rows], rng.dirichlet(np.full(k, concentration)), size, rng)]
        draws.append((rows, np.bincount(y_index[rows], minlength=k) / len(rows)))
    # shrunk class biases first; the unshrunk ones only when no estimator is safe with the shrunk ones
    for resamples in dict.fromkeys([bias_resamples, 0]):
        calibration = fit_bcts(proba[fit_rows], y_index[fit_rows], resamples, seed)
        confusion = soft_confusion(calibration.apply(proba[fit_rows]), y_index[fit_rows], k)
        summary = _simulate(proba, y_index, draws, calibration, confusion)
        safe = [name for name in ESTIMATORS if summary[name]["worst_accuracy_change"] >= -TOLERANCE]
        if safe:
            break
    source = confusion.sum(axis=0)
    chosen = max(safe, key=lambda name: summary[name]["mean_accuracy_change"]) if safe else "none"
    simulation = {
        "n_shifts": n_shifts,
        "concentration": concentration,
        "rows_per_shift": size,
        "estimators": summary,
        "bias_resamples": resamples,
        "criterion": f"best mean accuracy change whose worst change is >= -{TOLERANCE}",
    }
    if chosen == "none":
        simulation["reason"] = "no estimator kept accuracy within 0.01 on every simulated shift of the validation part"
    domain = None
    if vectors is not None and chosen != "none":
        domain = domain_reference(vectors[fit_rows], y_index[fit_rows], seed=seed)
        seen = [
            domain.distance(
                vectors[rows],
                _estimate(chosen, calibration.apply(proba[rows]), source, confusion)[0] / np.clip(source, _FLOOR, None),
            )
            for rows, _ in draws[:10]
        ]
        domain.limit = 2 * float(np.max(seen))
        simulation["domain_distances"] = [round(d, 5) for d in seen]
    calibration = fit_bcts(proba, y_index, resamples, seed)
    confusion = soft_confusion(calibration.apply(proba), y_index, k)
    return LabelShift(chosen, confusion.sum(axis=0).tolist(), calibration, confusion.tolist(), simulation, domain)


def adapt_priors(
    proba: np.ndarray, train_priors: np.ndarray, max_iter: int = 500, tol: float = 1e-6, min_rows: int = MIN_ROWS
) -> tuple[np.ndarray, PriorShift]:
    """Plain EM (no calibration; models saved before :class:`LabelShift`): posteriors adapted to the priors EM
    estimates on ``proba`` (rows x classes, from a model trained with ``train_priors``) and a report.
    Unchanged posteriors when EM did not converge, there are fewer than ``min_rows`` rows, or the estimate
    lies far outside its bootstrap interval."""
    proba = np.asarray(proba, dtype=float)
    train = np.asarray(train_priors, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != len(train):
        raise ValueError(f"posteriors have shape {proba.shape} but the model has {len(train)} training priors")
    train = train / train.sum()
    n = len(proba)
    if n < min_rows:
        report = PriorShift(
            False, False, 0, n, train.tolist(), train.tolist(), 0.0, f"only {n} rows; adaptation needs {min_rows}"
        )
        return proba, report
    priors, converged, iterations, gain = em_priors(proba, train, max_iter, tol)
    if not converged:
        reason = f"EM did not converge in {max_iter} iterations; posteriors left unchanged"
        return proba, PriorShift(False, False, iterations, n, train.tolist(), priors.tolist(), gain, reason)
    interval = bootstrap_priors(lambda rows: em_priors(proba[rows], train, max_iter, tol)[0], n, resamples=50)
    report = PriorShift(True, True, iterations, n, train.tolist(), priors.tolist(), gain, "converged", interval=interval.tolist())
    return reweight(proba, train, priors), report
