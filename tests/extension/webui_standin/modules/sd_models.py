"""Local checkpoints: there are none here, as on a thin-client laptop."""

from __future__ import annotations

import sys

from modules import paths_internal

checkpoints_list = {}
checkpoint_aliases = {}


class SdModelData:
    def __init__(self):
        self.sd_model = None
        self.loaded_sd_models = []
        self.was_loaded_at_least_once = False
        self.failed_loads = 0  # stand-in bookkeeping: how often "failed to load" was printed

    def get_sd_model(self):
        if self.was_loaded_at_least_once:
            return self.sd_model
        if self.sd_model is None:
            self.failed_loads += 1
            print("Stable diffusion model failed to load", file=sys.stderr)
        return self.sd_model

    def set_sd_model(self, v, already_loaded=False):
        self.sd_model = v


model_data = SdModelData()


def get_closet_checkpoint_match(search_string):
    return checkpoint_aliases.get(search_string)


def select_checkpoint():
    if not checkpoints_list:
        raise FileNotFoundError(
            "No checkpoints found. When searching for checkpoints, looked at:\n"
            f" - directory {paths_internal.models_path}/Stable-diffusion\n"
            "Can't run without a checkpoint. Find and place a .ckpt or .safetensors file into any of those locations."
        )
    return next(iter(checkpoints_list.values()))


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    """A1111: the step process_images takes before sampling; with no checkpoint it raises."""
    select_checkpoint()
    return model_data.sd_model


def forge_model_reload():
    """Forge: what manage_model_and_prompt_cache calls."""
    if not checkpoints_list:
        raise ValueError("You do not have any model! Please download at least one model in [models/Stable-diffusion].")
    return model_data.sd_model


def apply_token_merging(sd_model, token_merging_ratio):
    pass
