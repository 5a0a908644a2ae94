"""Teach a Qwen2.5-VL checkpoint to answer Seamline's verdict JSON for a crop: ``seamline train classifier``.

Each example is the production request — the system prompt and question that ``VllmClassifier`` sends for the
configured prompt style and language, with the crop as the image — followed by the target JSON the way
structured outputs make vLLM write it. Only the answer tokens carry loss. A real 3B/7B model is trained with
LoRA adapters (peft) on the language model, merged afterwards so vLLM serves it like any checkpoint, and also
kept unmerged in ``adapter/`` so a candidate can be served as an adapter beside its champion; the tiny test
model is trained in full.

Held-out evaluation generates greedily with ``transformers`` and parses each answer with the service's own
parser: defect-type accuracy, severity agreement, decision agreement, and the share of answers that parse.
(Served by vLLM, structured outputs make every answer parse; here an unparsable answer counts as wrong.)

Output folder::

    OUT/model/            the trained checkpoint (merged, bf16), its processor and tokenizer, the model card
    OUT/checkpoints/      Accelerate states every ``checkpoint_every`` steps
    OUT/log.jsonl, OUT/metrics.json
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from cloud.classifiers.answer import AnswerError, field_confidence, parse_answer
from cloud.classifiers.prompts import PromptConfig, system_prompt, user_text
from cloud.learning.classifier_data import CropExample, load_crops, split_crops
from cloud.learning.coco_data import DatasetError
from cloud.learning.loop import (
    RunLog,
    TrainResult,
    TrainRunConfig,
    device_name,
    optimizer_step,
    progress_bar,
    resume,
    save_state,
    warmup_cosine,
)
from cloud.learning.model_card import classifier_card, write_card
from seamline.config.paths import ConfigPath
from seamline.config.taxonomy import DEFAULT_TAXONOMY_PATH, Taxonomy, load_taxonomy

logger = logging.getLogger(__name__)

FULL_TRAINING_MAX_PARAMS = 200_000_000  # above this, "auto" trains LoRA adapters
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ClassifierTrainConfig(TrainRunConfig):
    """Everything a classifier training run depends on (recorded in the model card)."""

    data: ConfigPath = Field(
        title="Training data", description="A `seamline synth` folder, or a verified-store JSONL export."
    )
    val_data: ConfigPath | None = Field(
        default=None,
        title="Held-out data",
        description="Separate held-out data; default: hold out val_fraction of the source images.",
    )
    base: str = Field(
        default="tiny",
        title="Base model",
        description="tiny or small (built from config, random weights) or a checkpoint folder / hub id "
        "(e.g. Qwen/Qwen2.5-VL-3B-Instruct).",
    )
    mode: Literal["auto", "full", "lora"] = Field(
        default="auto", title="Mode", description="full or LoRA training; auto: LoRA above 200 M parameters."
    )
    taxonomy: ConfigPath = Field(
        default=DEFAULT_TAXONOMY_PATH,
        title="Taxonomy",
        description="Taxonomy file (types, severities, reject rule).",
    )
    prompt: PromptConfig = Field(
        default_factory=lambda: PromptConfig(style="v2-structured"),
        title="Prompt",
        description="The prompt the service will send (train and serve with the same one).",
    )
    steps: int = Field(default=1500, ge=1, title="Steps", description="Optimizer steps.")
    lr: float = Field(
        default=1e-3,
        gt=0,
        title="Learning rate",
        description="Peak AdamW learning rate (1e-3 full tiny; ~1e-4 LoRA).",
    )
    weight_decay: float = Field(default=0.01, ge=0, title="Weight decay", description="AdamW weight decay.")
    grad_clip: float = Field(default=1.0, gt=0, title="Gradient clip", description="Max gradient norm.")
    checkpoint_every: int = Field(
        default=500,
        ge=1,
        title="Checkpoint every",
        description="Steps between saved training states (and the last step).",
    )
    lora_r: int = Field(default=16, ge=1, title="LoRA rank", description="Adapter rank.")
    lora_alpha: int = Field(default=32, ge=1, title="LoRA alpha", description="Adapter scaling.")
    lora_dropout: float = Field(
        default=0.05, ge=0, lt=1, title="LoRA dropout", description="Adapter dropout."
    )
    aux_vision_loss: float = Field(
        default=1.0,
        ge=0,
        title="Vision auxiliary loss",
        description="Full training only: weight of a defect-type cross-entropy on the vision tower's "
        "pooled features (a temporary linear head, dropped after training). A vision tower trained from "
        "scratch gets its signal directly instead of only through the language model's answer tokens. "
        "0 disables.",
    )
    max_examples: int | None = Field(
        default=None, ge=1, title="Most examples", description="Cap on training crops read."
    )
    eval_examples: int = Field(
        default=400, ge=1, title="Held-out examples", description="Most held-out crops evaluated at the end."
    )
    max_new_tokens: int = Field(
        default=64, ge=16, le=512, title="Answer budget", description="Tokens generated per held-out answer."
    )


@dataclass
class ClassifierMetrics:
    type_accuracy: float
    severity_agreement: float
    decision_agreement: float
    valid_json: float
    examples: int
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        rows = [f"{'type':<16}{'accuracy':>9}{'n':>6}"]
        rows += [f"{name:<16}{v['accuracy']:>9.3f}{int(v['n']):>6}" for name, v in self.per_type.items()]
        rows.append(
            f"type accuracy {self.type_accuracy:.3f}, severity agreement {self.severity_agreement:.3f}, "
            f"decision agreement {self.decision_agreement:.3f}, valid JSON {self.valid_json:.3f} "
            f"({self.examples} crops)"
        )
        return "\n".join(rows)


class PromptEncoder:
    """Builds the production prompt for a crop and encodes prompt + answer for training or generation."""

    def __init__(self, processor: Any, taxonomy: Taxonomy, prompt: PromptConfig) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        messages = [
            {"role": "system", "content": system_prompt(taxonomy, prompt)},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text(prompt)}]},
        ]
        self.prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        self.end = "<|im_end|>\n"

    def encode_prompt(self, jpeg: bytes) -> dict[str, Any]:
        from PIL import Image

        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        return dict(self.processor(text=[self.prompt], images=[image], return_tensors="pt"))

    def training_batch(self, examples: list[CropExample]) -> dict[str, Any]:
        """Right-padded batch with labels on the answer tokens only."""
        import torch

        rows, pixel_values, grids = [], [], []
        for example in examples:
            enc = self.encode_prompt(example.jpeg)
            answer = self.tokenizer(example.target_json() + self.end, add_special_tokens=False)["input_ids"]
            prompt_ids = enc["input_ids"][0].tolist()
            token_types = enc.get("mm_token_type_ids")
            types = token_types[0].tolist() if token_types is not None else None
            rows.append((prompt_ids, answer, types))
            pixel_values.append(enc["pixel_values"])
            grids.append(enc["image_grid_thw"])
        length = max(len(p) + len(a) for p, a, _ in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
        labels = torch.full((len(rows), length), -100, dtype=torch.long)
        attention = torch.zeros((len(rows), length), dtype=torch.long)
        mm_types = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (prompt_ids, answer, types) in enumerate(rows):
            ids = prompt_ids + answer
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, len(prompt_ids) : len(ids)] = torch.tensor(answer)
            attention[i, : len(ids)] = 1
            if types is not None:
                mm_types[i, : len(types)] = torch.tensor(types)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "pixel_values": torch.cat(pixel_values),
            "image_grid_thw": torch.cat(grids),
        }
        if rows and rows[0][2] is not None:
            batch["mm_token_type_ids"] = mm_types
        return batch


@dataclass(frozen=True)
class ExampleAnswer:
    """The model's greedy answer to one example, beside its target (``type`` None: not valid JSON)."""

    key: str
    target: dict[str, str]
    type: str | None
    severity: str | None
    decision: str | None
    confidence: float | None  # joint probability of the type and severity tokens, as the service computes it
    seconds: float


def answer_examples(
    model: Any,
    encoder: PromptEncoder,
    examples: list[CropExample],
    taxonomy: Taxonomy,
    *,
    max_new_tokens: int = 64,
    device: Any = "cpu",
) -> list[ExampleAnswer]:
    """Greedy answers for ``examples``, with the token-probability confidence the routing policy reads."""
    import torch

    model.eval()
    answers = []
    for example in examples:
        started = time.perf_counter()
        enc = {k: v.to(device) for k, v in encoder.encode_prompt(example.jpeg).items()}
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
            )
        new_ids = out.sequences[0, enc["input_ids"].shape[1] :]
        seconds = time.perf_counter() - started
        text = encoder.tokenizer.decode(new_ids, skip_special_tokens=True)
        tokens = [
            {
                "token": encoder.tokenizer.decode([int(token)]),
                "logprob": float(torch.log_softmax(score[0].float(), -1)[int(token)]),
            }
            for token, score in zip(new_ids, out.scores, strict=False)
        ]
        try:
            answer = parse_answer(text, taxonomy)
        except AnswerError:
            answers.append(ExampleAnswer(example.key, example.target, None, None, None, None, seconds))
            continue
        answers.append(
            ExampleAnswer(
                example.key,
                example.target,
                answer.type,
                answer.severity.value if answer.severity else "none",
                answer.decision.value,
                field_confidence(tokens),
                seconds,
            )
        )
    return answers


def score_answers(answers: list[ExampleAnswer]) -> ClassifierMetrics:
    """Type accuracy, severity and decision agreement, valid JSON and per-type accuracy of ``answers``."""
    per_type: dict[str, Counter] = {}
    for a in answers:
        stats = per_type.setdefault(a.target["type"], Counter())
        stats["n"] += 1
        stats["right"] += a.type == a.target["type"]
    n = max(1, len(answers))
    return ClassifierMetrics(
        type_accuracy=sum(a.type == a.target["type"] for a in answers) / n,
        severity_agreement=sum(a.type is not None and a.severity == a.target["severity"] for a in answers)
        / n,
        decision_agreement=sum(a.decision == a.target["decision"] for a in answers) / n,
        valid_json=sum(a.type is not None for a in answers) / n,
        examples=len(answers),
        per_type={t: {"accuracy": c["right"] / c["n"], "n": c["n"]} for t, c in sorted(per_type.items())},
    )


def evaluate_classifier(
    model: Any,
    encoder: PromptEncoder,
    examples: list[CropExample],
    taxonomy: Taxonomy,
    *,
    max_new_tokens: int = 64,
    device: Any = "cpu",
) -> ClassifierMetrics:
    """Greedy answers for ``examples`` scored against their targets (see the module doc)."""
    return score_answers(
        answer_examples(model, encoder, examples, taxonomy, max_new_tokens=max_new_tokens, device=device)
    )


def _load_base(cfg: ClassifierTrainConfig) -> tuple[Any, Any, str]:
    """(model in fp32 for training, processor, mode)."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    source: str | Path = cfg.base
    if cfg.base in ("tiny", "small"):
        from seamline.modelzoo.tiny_qwen import build_tiny_qwen2_5_vl

        source = build_tiny_qwen2_5_vl(cfg.out_dir / "init", seed=cfg.seed, size=cfg.base)
    try:
        processor = AutoProcessor.from_pretrained(source)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(source, dtype=torch.float32)
    except OSError as exc:
        raise DatasetError(f"cannot load base model {cfg.base!r}: {exc}") from exc
    params = sum(p.numel() for p in model.parameters())
    mode = cfg.mode if cfg.mode != "auto" else ("full" if params <= FULL_TRAINING_MAX_PARAMS else "lora")
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            # The language model's projections only: the vision tower stays as pretrained.
            target_modules=r".*language_model.*\.(" + "|".join(LORA_TARGETS) + r")$",
        )
        model = get_peft_model(model, lora)
    return model, processor, mode


def _vision_loss(model: Any, head: Any, batch: dict[str, Any], labels: list[int]) -> Any:
    """Cross-entropy of the defect type from each image's pooled vision tokens."""
    import torch

    tokens = model.model.get_image_features(batch["pixel_values"], batch["image_grid_thw"]).pooler_output
    pooled = torch.stack([torch.cat([t.mean(0), t.max(0).values]) for t in tokens])
    return torch.nn.functional.cross_entropy(head(pooled), torch.tensor(labels, device=pooled.device))


def train_classifier(
    cfg: ClassifierTrainConfig,
    *,
    resume_run: bool = False,
    command: str | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Run (or resume) a classifier training; returns the model folder and its held-out metrics."""
    from cloud.learning.golden import refuse_golden

    for source in (cfg.data, cfg.val_data):
        if source is not None:
            refuse_golden(source, cfg.golden)
    from seamline.torch_compat import ensure_cpu_torch_compat

    ensure_cpu_torch_compat()
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    started = time.perf_counter()
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = load_taxonomy(cfg.taxonomy)
    examples = load_crops(cfg.data, taxonomy, seed=cfg.seed, limit=cfg.max_examples)
    if cfg.val_data is not None:
        train, val = examples, load_crops(cfg.val_data, taxonomy, seed=cfg.seed + 1)
    else:
        train, val = split_crops(examples, cfg.val_fraction)
    val = (
        val[: cfg.eval_examples]
        if len(val) <= cfg.eval_examples
        else [val[i] for i in np.linspace(0, len(val) - 1, cfg.eval_examples).astype(int)]
    )
    logger.info(
        "classifier: %d training crops %s, %d held out",
        len(train),
        dict(Counter(e.target["type"] for e in train)),
        len(val),
    )

    set_seed(cfg.seed)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=cfg.cpu)
    model, processor, mode = _load_base(cfg)
    encoder = PromptEncoder(processor, taxonomy, cfg.prompt)
    aux_head = None
    label_index = {label: i for i, label in enumerate(taxonomy.label_ids)}
    if mode == "full" and cfg.aux_vision_loss > 0:
        width = model.config.vision_config.out_hidden_size
        aux_head = torch.nn.Linear(2 * width, len(label_index))  # [mean, max] of the image's tokens
    trainable = [p for p in model.parameters() if p.requires_grad] + (
        list(aux_head.parameters()) if aux_head else []
    )
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.steps, cfg.warmup_steps))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    if aux_head is not None:
        aux_head = aux_head.to(accelerator.device)
    start_step = 0
    if resume_run:
        start_step, state = resume(accelerator, out)
        logger.info("resumed from %s at step %d", state, start_step)

    log = RunLog(out / "log.jsonl").write
    running: list[float] = []  # the optimised loss (answer tokens + the vision auxiliary loss)
    answer_losses: list[float] = []  # answer tokens only
    model.train()
    progress = progress_bar("train classifier", show=show_progress)
    # Class-balanced sampling: each step draws types uniformly, then a crop of that type, so rare types
    # (and the capped "normal" crops) are seen as often as common ones.
    by_type: dict[str, list[int]] = {}
    for i, example in enumerate(train):
        by_type.setdefault(example.target["type"], []).append(i)
    types = sorted(by_type)
    with progress:
        task = progress.add_task("steps", total=cfg.steps, completed=start_step, loss="-")
        for step in range(start_step, cfg.steps):
            rng = np.random.default_rng([cfg.seed, step])
            picks = [
                by_type[types[t]][int(rng.integers(len(by_type[types[t]])))]
                for t in rng.integers(len(types), size=cfg.batch_size)
            ]
            examples = [train[i] for i in picks]
            batch = {k: v.to(accelerator.device) for k, v in encoder.training_batch(examples).items()}
            with accelerator.autocast():
                loss = model(**batch).loss
                answer_losses.append(float(loss.item()))
                if aux_head is not None:
                    loss = loss + cfg.aux_vision_loss * _vision_loss(
                        model, aux_head, batch, [label_index[e.target["type"]] for e in examples]
                    )
            running.append(
                optimizer_step(
                    accelerator, loss, trainable, optimizer, scheduler, clip=cfg.grad_clip, step=step
                )
            )
            done = step + 1
            progress.update(task, completed=done, loss=f"{np.mean(running[-cfg.log_every :]):.3f}")
            if done % cfg.log_every == 0:
                log(
                    {
                        "step": done,
                        "loss": float(np.mean(running[-cfg.log_every :])),
                        "answer_loss": float(np.mean(answer_losses[-cfg.log_every :])),
                        "lr": scheduler.get_last_lr()[0],
                        "elapsed_s": round(time.perf_counter() - started, 1),
                    }
                )
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                save_state(accelerator, out, done, cfg.keep_checkpoints)

    unwrapped = accelerator.unwrap_model(model)
    if mode == "lora":
        # The unmerged adapter too: a candidate can then be served beside its champion on the same vLLM
        # server (--enable-lora --lora-modules NAME=out/adapter), see "Rolling out a classifier".
        unwrapped.save_pretrained(out / "adapter", safe_serialization=True)
        unwrapped = unwrapped.merge_and_unload()
    metrics = evaluate_classifier(
        unwrapped, encoder, val, taxonomy, max_new_tokens=cfg.max_new_tokens, device=accelerator.device
    )
    model_dir = out / "model"
    unwrapped.to(torch.bfloat16).save_pretrained(model_dir, safe_serialization=True)
    processor.save_pretrained(model_dir)
    seconds = time.perf_counter() - started
    (out / "metrics.json").write_text(json.dumps(metrics.to_dict(), indent=2) + "\n", encoding="utf-8")
    card = {
        "model": "Qwen2.5-VL verdict classifier trained by seamline train classifier",
        "version": cfg.version,
        "mode": mode,
        "parameters": sum(p.numel() for p in unwrapped.parameters()),
        "training": json.loads(cfg.model_dump_json()),
        "prompt_style": cfg.prompt.style,
        "prompt_language": cfg.prompt.language,
        "data": {"train": len(train), "held_out": len(val), "source": str(cfg.data)},
        "metrics": metrics.to_dict(),
        "steps": cfg.steps,
        "seconds": round(seconds, 1),
        "device": device_name(accelerator),
        "command": command or " ".join(sys.argv),
    }
    write_card(model_dir, card, classifier_card)
    shutil.rmtree(out / "init", ignore_errors=True)
    return TrainResult(model_dir, metrics, cfg.steps, seconds)
