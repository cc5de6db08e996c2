"""Generate ``docs/methods.md`` from the method registry, so the page cannot drift from the code.

  python -m benchmarks.docs            # rewrite docs/methods.md
  python -m benchmarks.docs --check    # exit 1 when docs/methods.md differs from what the code generates

What comes from the code: the list of built-in methods (the registry), each class's docstring, its flags
(``uses_stage1``, ``uses_teacher_maps``, ``post_hoc_explainable``, ``max_explanation_images``), its options with
their defaults and types (the keyword-only parameters of the constructors along the class's MRO, as
:meth:`methods.base.Method.option_names` collects them) and what each profile sets. What is written here by hand,
per method: modules, loss, stages and budget, what ``predict`` and ``explain`` return, what it follows and where it
departs (:data:`METHOD_NOTES`), and one line per option (:data:`OPTION_HELP`). A built-in method or option
without its note is an error, so adding one without documenting it fails the docs test.
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any
from benchmarks.profiles import PROFILES
from methods.base import Method
from methods.registry import get_method_class, list_methods

ROOT = Path(__file__).resolve().parent.parent
METHODS_PAGE = ROOT / "docs" / "methods.md"
NOTE_FIELDS = ("modules", "loss", "stages", "predict", "explain", "follows", "departs")
NOTE_TITLES = {"modules": "Modules", "loss": "Loss", "stages": "Training stages and budget",
               "predict": "`predict(x)`", "explain": "`explain(x, target)`", "follows": "Follows",
               "departs": "Departs"}

# E1 = the run's train.epochs (stage 1); E2 = the method's own `epochs` option, else train.epochs.
METHOD_NOTES: dict[str, dict[str, str]] = {
    "baseline": {
        "modules": "The backbone A (its trunk and a linear head giving K class scores); nothing else.",
        "loss": "CE(y, A(x)).",
        "stages": "One stage: the shared stage-1 model, trained once per (dataset, backbone, seed, training "
                  "settings) and reused by every method that starts from it. Budget: E1 epochs (with the `paper` "
                  "profile's grid, the best of 180 stage-1 trainings on validation accuracy).",
        "predict": "A(x): logits [B, K].",
        "explain": "A post-hoc map of A for the class `target` from the `explainer` option (saliency, i.e. the "
                   "absolute input gradient, by default) [B, C, H, W].",
        "follows": "The paper's baseline column: the backbone fine-tuned with cross-entropy (the first stage of "
                   "IMPACTX's two-stage training, §4.3).",
        "departs": "The paper does not say how a baseline's maps are made; its own map here is post-hoc, and the "
                   "explanation table also scores SHAP applied to it.",
    },
    "baseline-long": {
        "modules": "As `baseline`.",
        "loss": "CE(y, A(x)).",
        "stages": "Stage 1 (shared), then E2 more epochs of cross-entropy continuing from the stage-1 weights, with "
                  "a fresh optimiser and the same schedule, augmentation and best-on-validation selection as "
                  "IMPACTX's stage 2. Budget: E1 + E2 epochs.",
        "predict": "A(x): logits [B, K].",
        "explain": "As `baseline` (post-hoc, from `explainer`).",
        "follows": "Not in the paper: the equal-budget control (see "
                   "[decisions](decisions.md#equal-budget-control)).",
        "departs": "—",
    },
    "impactx": {
        "modules": "M = the frozen stage-1 model A (K scores m = M(x)); LEP = a copy of A whose last layer is "
                   "FC(512) + sigmoid (z = LEP(x)), starting from A's weights; D = the map decoder (FC, reshape, "
                   "[Conv 3×3, Conv 3×3, UpSampling ×2] blocks, Conv 3×3; preset `decoder`); C = Linear(K + 512, "
                   "256) → ReLU → Linear(256, K) on [m, z].",
        "loss": "Eq. 1: CE(y, C([M(x), LEP(x)])) + λ · MSE(r, D(LEP(x))), with r the teacher map of the training "
                "image for its true label, divided by its max |value| (`map_scale`).",
        "stages": "Stage 1 (shared), teacher maps of the stage-1 model for every training image (shared with the "
                  "other methods of the group, cached), then stage 2 trains LEP, D and C for E2 epochs with M "
                  "frozen; augmented images get their maps cropped and flipped alike. Budget: E1 + E2 epochs "
                  "(LEP's trunk trains for both). Map fidelity is measured after every stage-2 epoch.",
        "predict": "C([M(x), LEP(x)]): logits [B, K].",
        "explain": "D(LEP(x)) [B, C, H, W] (C = the teacher maps' channels): no explainer call; class-agnostic "
                   "(`target` is not used).",
        "follows": "The IMPACTX paper (§3, §4.3, eq. 1, Fig. 2) with its two-stage training; the `paper` profile "
                   "searches λ over the paper's grid.",
        "departs": "Where the paper is silent: layer widths of D and C, LEP's initialisation, map scaling, epochs, "
                   "stage-2 augmentation of the maps (see [decisions](decisions.md#impactx-modules)). The map "
                   "fidelity rows are the suite's addition.",
    },
    "impactx-nolambda": {
        "modules": "As `impactx`.",
        "loss": "CE(y, C([M(x), LEP(x)])) alone (λ = 0).",
        "stages": "As `impactx`. Budget: E1 + E2 epochs.",
        "predict": "C([M(x), LEP(x)]): logits [B, K].",
        "explain": "D(LEP(x)), but D receives no gradient at λ = 0 and keeps its initial weights (with the default "
                   "weight decay of 0): its map is a control, not an explanation.",
        "follows": "Not in the paper: an ablation that measures the extra branch's capacity without the "
                   "explanations.",
        "departs": "—",
    },
    "impactx-shuffled": {
        "modules": "As `impactx`.",
        "loss": "Eq. 1 with each image's teacher map replaced by another image's (a seeded permutation of the "
                "training maps).",
        "stages": "As `impactx`. Budget: E1 + E2 epochs. Map fidelity is still measured against the true maps.",
        "predict": "C([M(x), LEP(x)]): logits [B, K].",
        "explain": "D(LEP(x)), trained on maps that do not belong to their images.",
        "follows": "Not in the paper: an ablation that asks whether any auxiliary target of the same kind helps.",
        "departs": "—",
    },
    "impactx-single": {
        "modules": "As `impactx`, but M is trainable and starts from the backbone's default weights (pretrained "
                   "for timm backbones, random for LeNet-5); LEP starts from the backbone's default weights too.",
        "loss": "Eq. 1 + `m_loss_weight` · CE(y, M(x)), with the maps of the current M.",
        "stages": "One stage of E2 epochs in chunks of `refresh_every`; before each chunk the maps of the current M "
                  "are recomputed for every training image (true labels) with the run's teacher explainer, and the "
                  "optimiser restarts. Budget: E2 epochs, plus one explanation of the whole training set per "
                  "chunk.",
        "predict": "C([M(x), LEP(x)]): logits [B, K].",
        "explain": "D(LEP(x)), class-agnostic.",
        "follows": "The paper's single-stage training (§3.3), which the paper describes but does not run.",
        "departs": "Maps are refreshed every few epochs, not every step; the extra CE on M is the suite's (see "
                   "[decisions](decisions.md#single-stage-impactx)).",
    },
    "abn": {
        "modules": "The backbone cut before its last downsampling stage: extractor g(x); attention branch = a "
                   "stride-1 copy of the remaining stage(s), BN → Conv 1×1 (K) → BN → ReLU, giving attention "
                   "logits GAP(Conv 1×1 K→K) and the attention map M(x) = sigmoid(BN(Conv 3×3 K→1)); perception "
                   "branch = the original remaining stages on (1 + M(x)) ⊙ g(x), then the backbone's head.",
        "loss": "`attention_weight` · CE(y, attention logits) + CE(y, perception logits).",
        "stages": "One stage of E1 epochs (the run's `train.epochs`) from the backbone's default weights "
                  "(not the stage-1 model). Budget: E1 epochs.",
        "predict": "The perception branch's logits [B, K].",
        "explain": "M(x) resized bilinearly to the input [B, 1, H, W], values in (0, 1); class-agnostic.",
        "follows": "Fukui et al., *Attention Branch Network*, CVPR 2019, and its official code.",
        "departs": "The attach points for LeNet-5 and MobileNet are the suite's (see "
                   "[decisions](decisions.md#abn-attach-points)).",
    },
    "wae": {
        "modules": "The frozen stage-1 model A; an explanation encoder E = a copy of the backbone with an FC(512) + "
                   "sigmoid head that takes a map as its input; a head Linear(F + 512, 256) → ReLU → Linear(256, K) "
                   "on [A's features, E(map)]; the class-mean training maps [K, C, H, W].",
        "loss": "CE(y, head([A's features, E(φ_y(x))])), φ_y(x) the scaled teacher map of the true class.",
        "stages": "Stage 1 (shared), the shared teacher maps, then E2 epochs training E and the head with A "
                  "frozen. Budget: E1 + E2 epochs.",
        "predict": "head([A's features, E(ê(x))]) with ê(x) = Σ_c p(c | x) · (mean training map of class c), p = "
                   "A's softmax: logits [B, K].",
        "explain": "ê(x), the map the classifier consumes [B, C, H, W]; class-agnostic.",
        "follows": "Apicella et al., *SHAP-based explanations to improve classification systems* (XAI.it 2023), "
                   "as the IMPACTX paper describes it. **A reconstruction**: that paper's text could not be "
                   "obtained.",
        "departs": "Everything beyond the IMPACTX paper's description (see "
                   "[decisions](decisions.md#wae-reconstruction)).",
    },
    "wae-shap": {
        "modules": "As `wae`, plus an explainer for the test-time maps.",
        "loss": "As `wae`.",
        "stages": "As `wae` (validation during training uses the class-mean path). Budget: E1 + E2 epochs.",
        "predict": "As `wae`, with E_c(x) = φ_c(x), per-image maps of A for every class: K explanations per test "
                   "image.",
        "explain": "ê(x) = Σ_c p(c | x) · φ_c(x); class-agnostic. Scored on at most 16 test images, with no "
                   "post-hoc SHAP map (SHAP of a model that runs SHAP is unaffordable).",
        "follows": "As `wae`: a reconstruction, closer to per-image SHAP than the class-mean version.",
        "departs": "As `wae`.",
    },
}

# One line per option; "method.option" overrides "option" where an option means something else for that method.
OPTION_HELP: dict[str, str] = {
    "explainer": "post-hoc explainer of the own map (any registered explainer)",
    "explainer_options": "options of that explainer, e.g. `{'max_evals': 500}`",
    "epochs": "epochs of the second stage (None: `train.epochs`)",
    "augment": "crop and flip in the second stage, maps transformed with their images (None: `train.augment`)",
    "lr": "learning rate of the second stage (None: `train.lr`)",
    "lam": "λ of eq. 1, the weight of the map MSE (≥ 0)",
    "map_scale": "`max_abs`: each teacher map divided by its max |value|; `raw`: unscaled",
    "lep_init": "LEP's starting weights: `stage1` (the stage-1 model), `pretrained` (the backbone's default "
                "weights) or `scratch`",
    "decoder": "decoder preset: `paper` (FC → 128 × 4 × 4 at 32 px, 128/64/32 filters), `small` (FC → 16 × 8 × 8, "
               "16 filters) or `tiny` (FC → 8 × 8 × 8, 8 filters)",
    "decoder_width": "filters of D's first block, halved per block (None: the preset's)",
    "decoder_start": "side of D's first map in pixels (None: the preset's)",
    "decoder_blocks": "number of [Conv, Conv, UpSampling] blocks (None: as many as reach the image size)",
    "shuffle_seed": "seed of the permutation of the maps (None: the run seed)",
    "refresh_every": "epochs between recomputations of the maps of the current M",
    "m_loss_weight": "weight of the extra CE(y, M(x)) that keeps M a classifier (0: eq. 1 alone)",
    "attention_weight": "weight of the attention branch's cross-entropy (1.0: the original plain sum)",
    "encoder_init": "E's starting weights: `pretrained`, `stage1` or `scratch`",
    "stage1_input": "what the head receives from A: `features` or `logits`",
    "baseline-long.augment": "crop and flip in the second stage (None: `train.augment`)",
    "impactx-single.explainer": "explainer that recomputes the maps of the current M (None: the run's teacher "
                                "explainer)",
    "impactx-single.explainer_options": "options merged over the teacher's options",
    "impactx-single.epochs": "epochs of the single stage (None: `train.epochs`)",
    "impactx-single.augment": "crop and flip, maps transformed with their images (None: `train.augment`)",
    "impactx-single.lr": "learning rate (None: `train.lr`)",
    "impactx-single.lep_init": "LEP's starting weights: `pretrained` or `scratch`",
    "wae-shap.explainer": "explainer of the per-class test-time maps φ_c(x)",
    "wae-shap.explainer_options": "its options (None: `{'max_evals': 200}` for `partition`, `{}` otherwise)",
}

INTRO = """\
# Methods

<!-- Generated by `python -m benchmarks.docs` from the method registry and the constructors; do not edit by hand.
     Edit the class docstrings, or METHOD_NOTES / OPTION_HELP in benchmarks/docs.py, and regenerate. -->

Every method implements one interface (`methods/base.py`): it trains through `fit(ctx)`, which receives the data,
the shared training engine and the cached upstream artifacts (the stage-1 model, the teacher maps); a trained method
maps a normalised batch `x` [B, 3, H, W] to `predict(x)` → logits [B, K] and `explain(x, target)` → attribution maps
[B, 1 or 3, H, W] at input resolution. Every stage of every method trains with the same engine (optimiser, batch
size, learning rate, validation fraction, best-on-validation checkpoint, augmentation), so a difference between
methods is a difference of method, not of recipe.

In the budgets below, **E1** is the run's `train.epochs` (the stage-1 model) and **E2** a method's own `epochs`
option, or `train.epochs` when it is unset. Each row of a run records the budget it actually had
(`budget/epochs`, `budget/images`). Options are set with `--set method.<method>.<option>=<value>`; the reasons
behind the defaults are on the [decisions page](decisions.md).
"""


def builtin_methods() -> list[str]:
    """Registered methods defined in the suite's own ``methods`` package (plugins excluded)."""

    return [m for m in list_methods() if get_method_class(m).__module__.startswith("methods.")]


def method_options(cls: type) -> list[dict[str, Any]]:
    """Keyword-only constructor options of a method class along its MRO: base classes' first, each with the
    default and annotation of the most derived class that declares it; only those ``option_names()`` accepts."""
    from torch import nn


    valid = cls.option_names()
    found: dict[str, dict[str, Any]] = {}
    for klass in reversed(cls.__mro__):
        if klass in (Method, nn.Module, object) or "__init__" not in vars(klass):
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if param.kind is param.KEYWORD_ONLY and name in valid:
                found[name] = {"name": name, "default": param.default, "annotation": param.annotation,
                               "declared_in": klass.__name__}
    order = list(dict.fromkeys(found))  # first declaration order, base classes first
    return [found[name] for name in order]


def option_help(method: str, option: str) -> str:
    key = f"{method}.{option}"
    if key in OPTION_HELP:
        return OPTION_HELP[key]
    if option in OPTION_HELP:
        return OPTION_HELP[option]
    raise KeyError(f"option {option!r} of method {method!r} has no line in benchmarks.docs.OPTION_HELP")


def profile_settings(method: str) -> dict[str, list[str]]:
    """``{option: ["paper: [0.2, …]", "smoke: 4"]}``: what each profile sets for this method's options."""

    out: dict[str, list[str]] = {}
    for profile, make in PROFILES.items():
        preset = make()
        for option, value in preset.get("method_options", {}).get(method, {}).items():
            out.setdefault(option, []).append(f"{profile}: `{value!r}`")
        for option, values in preset.get("method_grid", {}).get(method, {}).items():
            out.setdefault(option, []).append(f"{profile}: grid `{list(values)!r}`")
    return out


def _type_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def clean_docstring(doc: str | None) -> str:
    """A class docstring as Markdown: dedented, Sphinx roles (``:class:`x```) reduced to code spans."""
    text = inspect.cleandoc(doc or "")
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def method_section(name: str) -> str:
    cls = get_method_class(name)
    if name not in METHOD_NOTES:
        raise KeyError(f"method {name!r} has no entry in benchmarks.docs.METHOD_NOTES")
    notes = METHOD_NOTES[name]
    missing = [f for f in NOTE_FIELDS if f not in notes]
    if missing:
        raise KeyError(f"METHOD_NOTES[{name!r}] lacks {missing}")
    lines = [f"## {name}", "", f"`{cls.__module__}.{cls.__qualname__}`", "", clean_docstring(cls.__doc__), ""]
    cap = cls.max_explanation_images
    scored = "the run's `explanation_images`" if cap is None else f"at most {cap}"
    lines += ["| | |", "|---|---|",
              f"| starts from the shared stage-1 model | {'yes' if cls.uses_stage1 else 'no'} |",
              f"| learns from the shared teacher maps | {'yes' if cls.uses_teacher_maps else 'no'} |",
              f"| post-hoc (SHAP) map of it scored | {'yes' if cls.post_hoc_explainable else 'no'} |",
              f"| test images scored with MoRF | {scored} |",
              ""]
    for field in NOTE_FIELDS:
        lines += [f"**{NOTE_TITLES[field]}.** {notes[field]}", ""]
    options = method_options(cls)
    if options:
        profiles = profile_settings(name)
        lines += ["| option | default | type | profiles set | meaning |", "|---|---|---|---|---|"]
        for opt in options:
            lines.append("| " + " | ".join(_cell(c) for c in (
                f"`{opt['name']}`", f"`{opt['default']!r}`", f"`{_type_text(opt['annotation'])}`",
                "; ".join(profiles.get(opt["name"], [])), option_help(name, opt["name"]))) + " |")
        lines.append("")
    else:
        lines += ["No options.", ""]
    return "\n".join(lines)


def render_methods_page() -> str:
    """The full text of ``docs/methods.md``."""

    names = builtin_methods()
    stale = sorted(set(METHOD_NOTES) - set(names))
    if stale:
        raise KeyError(f"benchmarks.docs.METHOD_NOTES names methods that are not registered: {stale}")
    summary = ["| method | what | stage-1 model | shared teacher maps |", "|---|---|---|---|"]
    for name in names:
        cls = get_method_class(name)
        first = clean_docstring(cls.__doc__).split("\n\n")[0].replace("\n", " ")
        summary.append(f"| [`{name}`](#{name}) | {_cell(first)} | {'yes' if cls.uses_stage1 else 'no'} | "
                       f"{'yes' if cls.uses_teacher_maps else 'no'} |")
    body = [INTRO, "\n".join(summary), ""] + [method_section(n) for n in names]
    return "\n".join(body).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.docs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs from the generated text")
    parser.add_argument("--out", default=str(METHODS_PAGE), help="the page to write or check")
    args = parser.parse_args(argv)
    text = render_methods_page()
    out = Path(args.out)
    if args.check:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            print(f"{out} is out of date: run python -m benchmarks.docs", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(out)
    return 0


__all__ = ["METHOD_NOTES", "OPTION_HELP", "builtin_methods", "method_options", "render_methods_page"]

if __name__ == "__main__":
    sys.exit(main())
