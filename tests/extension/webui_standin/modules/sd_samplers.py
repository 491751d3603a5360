"""Sampler names and the WebUI's sampler/schedule-type autocorrection (no sampling here)."""

from __future__ import annotations

import logging
from collections import namedtuple

from modules import sd_schedulers
from modules._standin import FORGE

_SamplerData = namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])

_A1111 = [
    _SamplerData('DPM++ 2M', None, ['k_dpmpp_2m'], {'scheduler': 'karras'}),
    _SamplerData('DPM++ SDE', None, ['k_dpmpp_sde'], {'scheduler': 'karras'}),
    _SamplerData('DPM++ 2M SDE', None, ['k_dpmpp_2m_sde'], {'scheduler': 'exponential'}),
    _SamplerData('DPM++ 2M SDE Heun', None, ['k_dpmpp_2m_sde_heun'], {'scheduler': 'exponential'}),
    _SamplerData('DPM++ 2S a', None, ['k_dpmpp_2s_a'], {'scheduler': 'karras'}),
    _SamplerData('DPM++ 3M SDE', None, ['k_dpmpp_3m_sde'], {'scheduler': 'exponential'}),
    _SamplerData('Euler a', None, ['k_euler_a', 'k_euler_ancestral'], {}),
    _SamplerData('Euler', None, ['k_euler'], {}),
    _SamplerData('LMS', None, ['k_lms'], {}),
    _SamplerData('Heun', None, ['k_heun'], {}),
    _SamplerData('DPM2', None, ['k_dpm_2'], {'scheduler': 'karras'}),
    _SamplerData('DPM2 a', None, ['k_dpm_2_a'], {'scheduler': 'karras'}),
    _SamplerData('DPM fast', None, ['k_dpm_fast'], {}),
    _SamplerData('DPM adaptive', None, ['k_dpm_ad'], {}),
    _SamplerData('Restart', None, ['restart'], {'scheduler': 'karras'}),
    _SamplerData('DDIM', None, ['ddim'], {}),
    _SamplerData('DDIM CFG++', None, ['ddim_cfgpp'], {}),
    _SamplerData('PLMS', None, ['plms'], {}),
    _SamplerData('UniPC', None, ['unipc'], {}),
    _SamplerData('LCM', None, ['k_lcm'], {}),
]
# Forge: A1111's list with its extra k-diffusion samplers after Restart, and DDPM last
# (modules_forge/alter_samplers.py), as forge.json lists them.
_RESTART = next(n for n, x in enumerate(_A1111) if x.name == 'Restart') + 1
_FORGE = [
    *_A1111[:_RESTART],
    _SamplerData('HeunPP2', None, ['heunpp2'], {}),
    _SamplerData('IPNDM', None, ['ipndm'], {}),
    _SamplerData('IPNDM_V', None, ['ipndm_v'], {}),
    _SamplerData('DEIS', None, ['deis'], {}),
    *_A1111[_RESTART:],
    _SamplerData('DDPM', None, ['ddpm'], {}),
]

all_samplers = _FORGE if FORGE else _A1111
all_samplers_map = {x.name: x for x in all_samplers}
samplers = all_samplers
samplers_for_img2img = all_samplers
samplers_map = {}
for _sampler in all_samplers:
    samplers_map[_sampler.name.lower()] = _sampler.name
    for _alias in _sampler.aliases:
        samplers_map[_alias.lower()] = _sampler.name


def find_sampler_config(name):
    if name is not None:
        return all_samplers_map.get(name, None)
    return all_samplers[0]


def visible_samplers():
    return list(samplers)


def visible_sampler_names():
    return [x.name for x in samplers]


def get_sampler_and_scheduler(sampler_name, scheduler_name, *, convert_automatic=True):
    default_sampler = samplers[0]
    found_scheduler = sd_schedulers.schedulers_map.get(scheduler_name, sd_schedulers.schedulers[0])
    name = sampler_name or default_sampler.name
    for scheduler in sd_schedulers.schedulers:
        for name_option in [scheduler.label, *(scheduler.aliases or [])]:
            if name.endswith(" " + name_option):
                found_scheduler = scheduler
                name = name[0:-len(name_option) - 1]
                break
    sampler = all_samplers_map.get(name, default_sampler)
    if convert_automatic and sampler.options.get('scheduler', None) == found_scheduler.name:
        found_scheduler = sd_schedulers.schedulers[0]
    return sampler.name, found_scheduler.label


def fix_p_invalid_sampler_and_scheduler(p):
    i_sampler_name, i_scheduler = p.sampler_name, p.scheduler
    p.sampler_name, p.scheduler = get_sampler_and_scheduler(p.sampler_name, p.scheduler, convert_automatic=False)
    if p.sampler_name != i_sampler_name or i_scheduler != p.scheduler:
        logging.warning(f'Sampler Scheduler autocorrection: "{i_sampler_name}" -> "{p.sampler_name}", '
                        f'"{i_scheduler}" -> "{p.scheduler}"')

