"""The WebUI's sampling, our own code: sigma schedules, the denoiser, the samplers, one pass."""
