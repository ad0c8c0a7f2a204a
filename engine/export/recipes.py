"""Ready-to-run training scripts written next to an export: TRL's ``SFTTrainer`` with LoRA via
``peft``, and the same recipe on Unsloth.

Both read the export's conversations (the messages files, else the Hugging Face Parquet files,
else ShareGPT converted to messages), format them with the chat template of the model trained,
cut sequences at ``max_length`` taken from the export's p95 token length, evaluate on the
validation split and stop early when the eval loss stops falling. The scripts name their data
relative to their own folder, so the export folder can be moved or copied to a training machine.
They are written for TRL 1.x (``SFTConfig.max_length``, ``processing_class``, ``eval_strategy``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.export.options import ExportedFile

TRL_SCRIPT = "train_trl.py"
UNSLOTH_SCRIPT = "train_unsloth.py"
# The model the recipes fine-tune when the project names none.
DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
# max_length is the p95 token count rounded up to a multiple of this (GPU-friendly shapes).
LENGTH_MULTIPLE = 64
MIN_MAX_LENGTH = 128
# The chat formats the scripts can read, best first.
_SOURCES = ("messages", "hf", "sharegpt")


@dataclass(frozen=True)
class RecipeInputs:
    """What a training script needs to know about the export it sits beside."""

    name: str
    base_model: str
    files: Sequence[ExportedFile]
    max_length: int
    p95_tokens: int | None
    max_tokens: int | None
    tokens_counted_with: str
    trial: bool

    @property
    def source_format(self) -> str | None:
        """The format the scripts read (messages, hf or sharegpt), or None when none was exported."""
        formats = {f.format for f in self.files}
        return next((f for f in _SOURCES if f in formats), None)

    def data_files(self, split: str) -> list[str]:
        """The files of ``split`` in the read format, relative to the export folder."""
        fmt = self.source_format
        return [f.path.as_posix() for f in self.files if f.format == fmt and f.split == split]

    def rows(self, split: str) -> int:
        fmt = self.source_format
        return sum(f.rows for f in self.files if f.format == fmt and f.split == split)


def recipe_max_length(p95_tokens: int | None, fallback: int) -> int:
    """``max_length`` for the trainer: the p95 token length rounded up to a multiple of 64
    (at least 128); ``fallback`` (the project's max_seq_length) when nothing was counted."""
    if not p95_tokens:
        return fallback
    return max(MIN_MAX_LENGTH, math.ceil(p95_tokens / LENGTH_MULTIPLE) * LENGTH_MULTIPLE)


_HEADER = '''#!/usr/bin/env python3
"""Fine-tune a chat model with LoRA on the {which} of "{name}" with {engine}.

Written by PairForge next to the export: {train} train and {validation} validation conversations,
read from the {source} files beside this script and formatted with the chat template of the model
trained. Sequences are cut at MAX_LENGTH = {max_length} tokens, the p95 of the exported
conversations ({p95}; longest {longest}; counted with {counted}); --max-length changes it.
The validation split is evaluated every --eval-steps optimizer steps, the adapter with the lowest
eval loss is kept, and training stops once the eval loss has not improved for --patience
evaluations.

Install:  {install}
Run:      python {script} [--model NAME_OR_FOLDER] [--output-dir DIR]  (--help lists the rest)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE_MODEL = {base_model!r}
MAX_LENGTH = {max_length!r}
DATA_FORMAT = {source!r}
TRAIN_FILES = {train_files!r}
VALIDATION_FILES = {validation_files!r}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=BASE_MODEL, help="Model to fine-tune: a Hugging Face name or a local folder.")
    parser.add_argument("--output-dir", default={output_dir!r}, help="Where checkpoints and the adapter go.")
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH, help="Tokens per sequence; longer ones are cut.")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="Stop after this many optimizer steps (-1: run the epochs).")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=4, help="Gradient accumulation steps.")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--lora-dropout", type=float, default={lora_dropout!r})
    parser.add_argument("--eval-steps", type=int, default=0, help="Evaluate every N steps (0: about four times an epoch).")
    parser.add_argument("--patience", type=int, default=3, help="Evaluations without a lower eval loss before stopping.")
    parser.add_argument("--assistant-only-loss", action="store_true",
                        help="Train on the answers only (the chat template must mark them with generation tags).")
    parser.add_argument("--seed", type=int, default=42)
{extra_args}    return parser.parse_args(argv)


def load_splits():
    """The train and validation datasets, one "messages" column of role/content turns each."""
    from datasets import load_dataset

    files = {{"train": [str(HERE / f) for f in TRAIN_FILES]}}
    if VALIDATION_FILES:
        files["validation"] = [str(HERE / f) for f in VALIDATION_FILES]
    loaded = load_dataset("parquet" if DATA_FORMAT == "hf" else "json", data_files=files)
    if DATA_FORMAT == "sharegpt":
        roles = {{"human": "user", "gpt": "assistant", "system": "system"}}
        loaded = loaded.map(
            lambda row: {{"messages": [{{"role": roles[t["from"]], "content": t["value"]}} for t in row["conversations"]]}},
            remove_columns=["conversations"],
        )
    loaded = loaded.select_columns(["messages"])
    return loaded["train"], loaded["validation"] if "validation" in loaded else None


def checkpointing_field(config_class) -> str:
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing; use the name this version has."""
    names = {{f.name for f in dataclasses.fields(config_class)}}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def training_config(args, train_rows: int, has_validation: bool, on_gpu: bool, bf16: bool):
    """SFTConfig for this run: eval and checkpoints on the same steps, the best by eval loss kept."""
    from trl import SFTConfig

    steps_per_epoch = max(1, math.ceil(train_rows / (args.batch_size * args.grad_accum)))
    eval_steps = args.eval_steps or max(1, steps_per_epoch // 4)
    return SFTConfig(
        **{{checkpointing_field(SFTConfig): on_gpu}},
        output_dir=args.output_dir,
        max_length=args.max_length,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps_per_epoch // 10),
        logging_steps=max(1, min(10, eval_steps)),
        eval_strategy="steps" if has_validation else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=has_validation,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        assistant_only_loss=args.assistant_only_loss,
        bf16=bf16,
        fp16=on_gpu and not bf16,
        dataloader_pin_memory=on_gpu,
        report_to="none",
        seed=args.seed,
    )


def report(trainer, output_dir: Path) -> None:
    state = trainer.state
    summary = {{
        "optimizer_steps": state.global_step,
        "best_eval_loss": state.best_metric,
        "best_checkpoint": state.best_model_checkpoint,
        "adapter": str(output_dir),
    }}
    (output_dir / "pairforge-run.json").write_text(json.dumps(summary, indent=2) + "\\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    print("Next: serve the adapter (e.g. merge it and `ollama create`), then run `pairforge eval` on it.")
'''

_TRL_MAIN = '''

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from peft import LoraConfig
    from transformers import AutoTokenizer, EarlyStoppingCallback
    from trl import SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if not tokenizer.chat_template:
        sys.exit(f"{args.model} has no chat template: pick a chat (instruct) model, or one whose tokenizer has one.")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train, validation = load_splits()
    on_gpu = torch.cuda.is_available()
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    config = training_config(args, len(train), validation is not None, on_gpu, bf16)
    peft_config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                             target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(
        model=args.model,
        args=config,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=args.patience)] if validation is not None else None,
    )
    trainer.train()
    output_dir = Path(args.output_dir)
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    report(trainer, output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

_UNSLOTH_EXTRA_ARGS = '''    parser.add_argument("--no-4bit", dest="load_in_4bit", action="store_false",
                        help="Load the model in 16 bits instead of 4 (QLoRA).")
'''

_UNSLOTH_MAIN = '''

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Unsloth patches transformers and TRL when imported, so it comes first.
    from unsloth import FastLanguageModel, is_bfloat16_supported
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=args.model, max_seq_length=args.max_length, dtype=None, load_in_4bit=args.load_in_4bit,
    )
    if not tokenizer.chat_template:
        sys.exit(f"{args.model} has no chat template: pick a chat (instruct) model, or one whose tokenizer has one.")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = FastLanguageModel.get_peft_model(
        model, r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, bias="none",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        use_gradient_checkpointing="unsloth", random_state=args.seed,
    )
    train, validation = load_splits()
    bf16 = is_bfloat16_supported()
    config = training_config(args, len(train), validation is not None, True, bf16)
    # Unsloth checkpoints activations itself (above).
    for name in ("activation_checkpointing", "gradient_checkpointing"):
        if hasattr(config, name):
            setattr(config, name, False)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=args.patience)] if validation is not None else None,
    )
    trainer.train()
    output_dir = Path(args.output_dir)
    model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    report(trainer, output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _header(inputs: RecipeInputs, *, engine: str, script: str, install: str, output_dir: str,
            lora_dropout: float, extra_args: str) -> str:
    return _HEADER.format(
        which="trial subset" if inputs.trial else "full set",
        name=inputs.name.replace('"', "'"),
        engine=engine,
        train=inputs.rows("train"),
        validation=inputs.rows("validation"),
        source=inputs.source_format,
        max_length=inputs.max_length,
        p95=f"{inputs.p95_tokens} tokens" if inputs.p95_tokens else "not counted",
        longest=f"{inputs.max_tokens}" if inputs.max_tokens else "unknown",
        counted=inputs.tokens_counted_with,
        install=install,
        script=script,
        base_model=inputs.base_model,
        train_files=inputs.data_files("train"),
        validation_files=inputs.data_files("validation"),
        output_dir=output_dir,
        lora_dropout=lora_dropout,
        extra_args=extra_args,
    )


def trl_script(inputs: RecipeInputs) -> str:
    """The TRL ``SFTTrainer`` + LoRA script for the export described by ``inputs``."""
    header = _header(inputs, engine="TRL's SFTTrainer and peft", script=TRL_SCRIPT,
                     install='pip install torch transformers trl peft datasets  (or: pip install "pairforge[train]")',
                     output_dir="lora-trial" if inputs.trial else "lora", lora_dropout=0.05, extra_args="")
    return header + _TRL_MAIN


def unsloth_script(inputs: RecipeInputs) -> str:
    """The same recipe on Unsloth (a CUDA GPU; 4-bit QLoRA by default)."""
    header = _header(inputs, engine="Unsloth (a CUDA GPU; 4-bit QLoRA unless --no-4bit)", script=UNSLOTH_SCRIPT,
                     install="pip install unsloth  (it brings torch, transformers, trl, peft and datasets)",
                     output_dir="lora-trial-unsloth" if inputs.trial else "lora-unsloth", lora_dropout=0.0,
                     extra_args=_UNSLOTH_EXTRA_ARGS)
    return header + _UNSLOTH_MAIN


__all__ = [
    "DEFAULT_BASE_MODEL",
    "TRL_SCRIPT",
    "UNSLOTH_SCRIPT",
    "RecipeInputs",
    "recipe_max_length",
    "trl_script",
    "unsloth_script",
]
