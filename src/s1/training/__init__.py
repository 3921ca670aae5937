"""Training: the s1 text format, completion-only SFT, and recipes from one CPU to many GPU nodes.

    from s1.training import load_recipe, train
    result = train(load_recipe("cpu-smoke", ["train.max_steps=10"]))
"""

from s1.training.data import TruncationReport, build_dataset, load_records
from s1.training.format import FormattedExample, format_example
from s1.training.recipes import (DataConfig, LoraConfig, ModelConfig, Recipe, TrainConfig,
                                 load_recipe)
from s1.training.sft import TrainResult, train

__all__ = ["DataConfig", "FormattedExample", "LoraConfig", "ModelConfig", "Recipe", "TrainConfig",
           "TrainResult", "TruncationReport", "build_dataset", "format_example", "load_recipe",
           "load_records", "train"]
