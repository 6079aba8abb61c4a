"""Genetic programming (DEAP) that fits an equation to a scorer's outputs.

Candidates are DEAP trees over the operators of
:mod:`sentinel_jax.symbolic.operators` and the input channels ``x<channel>``.
Each tree is compiled once to a numpy expression over the sample's columns and
evaluated vectorised; its fitness is the normalised error (``1 - R^2``) of its
best affine rescaling (:func:`~sentinel_jax.symbolic.fitting.fit_linear`).
Every generation the few best new shapes also get their inner constants
refined by Levenberg-Marquardt and the refined constants written back into
the tree (Lamarckian).

Bloat control: a static height limit (``max_height``) and node budget
(``max_complexity``) on every crossover and mutation, and a double tournament
that prefers the smaller of two equally fit candidates.

Reproducible: DEAP draws from Python's global ``random``, which :func:`evolve`
seeds and restores afterwards. Fitness can run on a process pool; the creator
types are defined at import so individuals pickle.
"""

from __future__ import annotations

import copy
import functools
import logging
import multiprocessing
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from deap import base, creator, gp, tools
from tqdm.auto import tqdm

from sentinel_jax.symbolic.fitting import (
    WORST_ERROR,
    LinearFit,
    fit_linear,
    refine_constants,
)
from sentinel_jax.symbolic.operators import NUMPY_FUNCTIONS, OPERATORS
from sentinel_jax.symbolic.pareto import FrontEntry, ParetoArchive

logger = logging.getLogger(__name__)

if not hasattr(creator, "SymbolicFitness"):
    creator.create("SymbolicFitness", base.Fitness, weights=(-1.0,))
    creator.create("SymbolicTree", gp.PrimitiveTree,
                   fitness=creator.SymbolicFitness)


def random_constant() -> float:
    """Draw of a new ephemeral constant (module level so trees pickle)."""
    return round(random.uniform(-2.0, 2.0), 3)


@dataclass(frozen=True)
class GPSettings:
    """Search settings (the ``symbolic`` config section maps onto these).

    Attributes:
        population: individuals per generation.
        generations: generations to run.
        max_complexity: node budget of a tree.
        max_height: height limit of a tree.
        seed: seed of the search.
        processes: worker processes for fitness (1 evaluates in-process).
        crossover: probability an offspring pair is crossed.
        mutation: probability an offspring is mutated.
        elite: best individuals carried unchanged to the next generation.
        refine_per_generation: new shapes whose constants LM refines.
        progress: show a progress bar over generations.
    """

    population: int = 100
    generations: int = 50
    max_complexity: int = 20
    max_height: int = 8
    seed: int = 0
    processes: int = 1
    crossover: float = 0.7
    mutation: float = 0.3
    elite: int = 2
    refine_per_generation: int = 4
    progress: bool = False


@dataclass
class GPResult:
    """What a run found.

    Attributes:
        front: the Pareto front, simplest first (constants fitted).
        best_error: best training error per generation, ``[generations + 1]``.
        evaluations: fitness evaluations spent.
    """

    front: list[FrontEntry]
    best_error: list[float] = field(default_factory=list)
    evaluations: int = 0


def make_primitive_set(channels: Sequence[int]) -> gp.PrimitiveSet:
    """The primitive set over input channels ``channels`` (named ``x<c>``)."""
    pset = gp.PrimitiveSet("equation", len(channels))
    for operator in OPERATORS.values():
        pset.addPrimitive(NUMPY_FUNCTIONS[operator.name], operator.arity,
                          name=operator.name)
    pset.addEphemeralConstant("const", random_constant)
    pset.renameArguments(**{f"ARG{i}": f"x{c}" for i, c in enumerate(channels)})
    return pset


def is_constant(node: gp.Terminal) -> bool:
    """Whether a tree node is an ephemeral constant."""
    return isinstance(type(node), gp.MetaEphemeral)


def tree_source(tree: gp.PrimitiveTree, column: dict[str, int]
                ) -> tuple[str, np.ndarray]:
    """A numpy expression for ``tree`` over columns ``X`` and constants ``c``.

    Args:
        tree: the candidate.
        column: argument name (``x5``) -> row of ``X``.

    Returns:
        The expression source and the tree's constants ``[k]`` in prefix order.
    """
    constants: list[float] = []
    stack: list[tuple[gp.Primitive | gp.Terminal, list[str]]] = []
    for node in tree:
        stack.append((node, []))
        while len(stack[-1][1]) == stack[-1][0].arity:
            node, args = stack.pop()
            if isinstance(node, gp.Primitive):
                text = f"{node.name}({', '.join(args)})"
            elif is_constant(node):
                constants.append(float(node.value))
                text = f"c[{len(constants) - 1}]"
            else:
                text = f"X[{column[node.value]}]"
            if not stack:
                return text, np.asarray(constants, dtype=np.float64)
            stack[-1][1].append(text)
    raise ValueError(f"incomplete tree: {tree}")


@functools.lru_cache(maxsize=20_000)
def compile_source(source: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``lambda X, c: <source>`` with the numpy operators in scope."""
    namespace = {"__builtins__": {}, **NUMPY_FUNCTIONS}
    return eval(f"lambda X, c: {source}", namespace)


def evaluate_source(source: str, constants: np.ndarray, columns: np.ndarray
                    ) -> np.ndarray:
    """The candidate's prediction, ``float64 [batch]``."""
    with np.errstate(all="ignore"):
        prediction = compile_source(source)(columns, constants)
    return np.broadcast_to(np.asarray(prediction, np.float64), columns.shape[1:])


# Worker state: set once per process so candidates travel as short strings.
_DATA: dict[str, np.ndarray] = {}


def _set_data(columns: np.ndarray, target: np.ndarray) -> None:
    _DATA["columns"], _DATA["target"] = columns, target


def _fitness(job: tuple[str, np.ndarray]) -> LinearFit:
    source, constants = job
    prediction = evaluate_source(source, constants, _DATA["columns"])
    return fit_linear(prediction, _DATA["target"])


def _write_constants(tree: gp.PrimitiveTree, constants: np.ndarray) -> None:
    positions = [i for i, node in enumerate(tree) if is_constant(node)]
    for position, value in zip(positions, constants, strict=True):
        node = copy.copy(tree[position])
        node.value = float(value)
        tree[position] = node


def _make_toolbox(pset: gp.PrimitiveSet, settings: GPSettings) -> base.Toolbox:
    toolbox = base.Toolbox()
    toolbox.register("expr", gp.genHalfAndHalf, pset=pset, min_=1, max_=3)
    toolbox.register("individual", tools.initIterate, creator.SymbolicTree,
                     toolbox.expr)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("select", tools.selDoubleTournament, fitness_size=5,
                     parsimony_size=1.4, fitness_first=True)
    toolbox.register("mate", gp.cxOnePoint)
    toolbox.register("grow", gp.genGrow, min_=0, max_=2)

    def mutate(individual):
        choice = random.random()
        if choice < 0.4:
            return gp.mutUniform(individual, toolbox.grow, pset)
        if choice < 0.6:
            return gp.mutNodeReplacement(individual, pset)
        if choice < 0.8:
            return gp.mutEphemeral(individual, "one")
        return gp.mutShrink(individual)

    toolbox.register("mutate", mutate)
    for operator in ("mate", "mutate"):
        toolbox.decorate(operator, gp.staticLimit(
            key=lambda tree: tree.height, max_value=settings.max_height))
        toolbox.decorate(operator, gp.staticLimit(
            key=len, max_value=settings.max_complexity))
    return toolbox


class _Evaluator:
    """Scores individuals, caching by source and refining constants."""

    def __init__(self, columns: np.ndarray, target: np.ndarray,
                 channels: Sequence[int], mapper: Callable) -> None:
        self.columns, self.target, self.map = columns, target, mapper
        self.column = {f"x{c}": i for i, c in enumerate(channels)}
        self.cache: dict[str, LinearFit] = {}
        self.refined: set[str] = set()
        self.evaluations = 0

    def score(self, individuals: Sequence[gp.PrimitiveTree]) -> None:
        jobs, pending = [], []
        for individual in individuals:
            key = str(individual)
            if key in self.cache:
                self._assign(individual, self.cache[key])
            else:
                jobs.append(tree_source(individual, self.column))
                pending.append(individual)
        fits = list(self.map(_fitness, jobs))
        self.evaluations += len(jobs)
        for individual, fit in zip(pending, fits, strict=True):
            self.cache[str(individual)] = fit
            self._assign(individual, fit)

    def refine(self, individual: gp.PrimitiveTree, steps: int = 8) -> None:
        """LM on the inner constants, written back into ``individual``."""
        source, constants = tree_source(individual, self.column)
        if constants.size == 0:
            return
        function = functools.partial(self._predict, source)
        constants, fit = refine_constants(function, constants, self.target,
                                          steps=steps)
        self.evaluations += steps * (constants.size + 2)
        _write_constants(individual, constants)
        self.cache[str(individual)] = fit
        self._assign(individual, fit)

    def _predict(self, source: str, constants: np.ndarray) -> np.ndarray:
        return evaluate_source(source, constants, self.columns)

    @staticmethod
    def _assign(individual: gp.PrimitiveTree, fit: LinearFit) -> None:
        individual.fitness.values = (fit.error,)
        individual.linear = fit


def evolve(hist: np.ndarray, target: np.ndarray, channels: Sequence[int],
           settings: GPSettings) -> GPResult:
    """Runs the genetic program.

    Args:
        hist: ``float [batch, features]`` inputs (columns of ``channels``).
        target: ``float [batch]`` scores to fit.
        channels: the channel number of each feature column.
        settings: search settings.

    Returns:
        The Pareto front of complexity against training error.
    """
    if hist.ndim != 2 or hist.shape[1] != len(channels):
        raise ValueError(f"hist must be [batch, {len(channels)}], got {hist.shape}")
    if target.shape != hist.shape[:1]:
        raise ValueError(f"target must be [{hist.shape[0]}], got {target.shape}")
    columns = np.ascontiguousarray(hist.T, dtype=np.float64)  # [features, batch]
    target = np.asarray(target, dtype=np.float64)
    pset = make_primitive_set(channels)
    toolbox = _make_toolbox(pset, settings)

    saved_state = random.getstate()
    random.seed(settings.seed)
    pool = None
    try:
        if settings.processes > 1:
            # Not fork: forking a process that runs JAX's threads can deadlock.
            pool = multiprocessing.get_context("forkserver").Pool(
                settings.processes, initializer=_set_data,
                initargs=(columns, target))
            mapper = functools.partial(pool.map, chunksize=8)
        else:
            _set_data(columns, target)
            mapper = map
        evaluator = _Evaluator(columns, target, channels, mapper)
        result = _run(toolbox, evaluator, settings)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        _DATA.clear()
        random.setstate(saved_state)
    return result


def _offer_all(archive: ParetoArchive, population: Sequence) -> None:
    for individual in population:
        fit = individual.linear
        if fit.error < WORST_ERROR:
            archive.offer(FrontEntry(len(individual), fit.error,
                                     copy.deepcopy(individual), fit.scale,
                                     fit.offset))


def _run(toolbox: base.Toolbox, evaluator: _Evaluator,
         settings: GPSettings) -> GPResult:
    archive = ParetoArchive()
    population = toolbox.population(n=settings.population)
    evaluator.score(population)
    _offer_all(archive, population)
    best_error = [min(ind.fitness.values[0] for ind in population)]

    for _ in tqdm(range(settings.generations), desc="symbolic regression",
                  disable=not settings.progress, leave=False):
        elite = [copy.deepcopy(ind) for ind in tools.selBest(population,
                                                              settings.elite)]
        offspring = [copy.deepcopy(ind) for ind in toolbox.select(
            population, settings.population - len(elite))]
        # The limits decorating mate and mutate return a parent in place of
        # an oversized child, so their results must be used, not the inputs.
        for index in range(0, len(offspring) - 1, 2):
            if random.random() < settings.crossover:
                first, second = toolbox.mate(offspring[index], offspring[index + 1])
                del first.fitness.values, second.fitness.values
                offspring[index], offspring[index + 1] = first, second
        for index, individual in enumerate(offspring):
            if random.random() < settings.mutation:
                (offspring[index],) = toolbox.mutate(individual)
                del offspring[index].fitness.values
        # Clones carry no new information: replace them with new random trees.
        seen = {str(ind) for ind in elite}
        for index, individual in enumerate(offspring):
            key = str(individual)
            if key in seen:
                offspring[index] = toolbox.individual()
                key = str(offspring[index])
            seen.add(key)
        evaluator.score([ind for ind in offspring if not ind.fitness.valid])

        # Refine the constants of the best shapes not refined before.
        candidates = sorted(offspring, key=lambda ind: ind.fitness.values[0])
        budget = settings.refine_per_generation
        for individual in candidates:
            if budget == 0:
                break
            key = str(individual)
            if key not in evaluator.refined and individual.linear.error < WORST_ERROR:
                evaluator.refined.add(key)
                evaluator.refine(individual)
                evaluator.refined.add(str(individual))
                budget -= 1

        population = elite + offspring
        _offer_all(archive, population)
        best_error.append(min(ind.fitness.values[0] for ind in population))

    # A last, longer refinement of the front before it is returned.
    for entry in archive.front():
        tree = copy.deepcopy(entry.expression)
        evaluator.refine(tree, steps=30)
        _offer_all(archive, [tree])
    logger.info("symbolic regression: best error %.4g after %d evaluations",
                best_error[-1], evaluator.evaluations)
    return GPResult(front=archive.front(), best_error=best_error,
                    evaluations=evaluator.evaluations)
