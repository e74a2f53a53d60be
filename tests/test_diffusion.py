"""Schedules and samplers against Hugging Face diffusers; U-Net shapes."""

import pytest
import torch

from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.diffusion.samplers import ddim_step, ddpm_step, sample, spaced_timesteps
from recoseg_cli.diffusion.schedule import NoiseSchedule
from recoseg_cli.models.unet import UNet, UNetConfig

diffusers = pytest.importorskip("diffusers")
TOLERANCE = 1e-5


def diffusers_kwargs(kind: str, prediction: str) -> dict:
    return {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
            "beta_schedule": "linear" if kind == "linear" else "squaredcos_cap_v2", "clip_sample": False,
            "prediction_type": "epsilon" if prediction == "epsilon" else "v_prediction",
            "timestep_spacing": "trailing"}


def in_float64(scheduler, schedule: NoiseSchedule):
    """Run diffusers' step arithmetic in float64 on our float64 schedule: it computes in float32 by default,
    whose rounding alone exceeds 1e-5 at small t, so the comparison would test precision, not the formulas."""
    scheduler.betas = schedule.betas.clone()
    scheduler.alphas = 1.0 - schedule.betas
    scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return scheduler


def model_output_and_eps(schedule, prediction, x, t, generator):
    output = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    if prediction == "epsilon":
        return output, output
    return output, schedule.eps_from_v(x, torch.full((x.shape[0],), t), output)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_matches_diffusers(kind):
    ours = NoiseSchedule(kind)
    theirs = diffusers.DDPMScheduler(**diffusers_kwargs(kind, "epsilon"))
    torch.testing.assert_close(ours.alphas_cumprod.float(), theirs.alphas_cumprod, atol=1e-6, rtol=0)
    x0, noise = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(ours.q_sample(x0, t, noise), theirs.add_noise(x0, noise, t), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("steps", [1000, 50, 7])
def test_ddpm_steps_match_diffusers(prediction, steps):
    schedule = NoiseSchedule()
    scheduler = diffusers.DDPMScheduler(**diffusers_kwargs("linear", prediction), variance_type="fixed_small")
    torch.testing.assert_close(scheduler.alphas_cumprod.double(), schedule.alphas_cumprod, atol=1e-6, rtol=0)
    in_float64(scheduler, schedule)
    scheduler.set_timesteps(steps)
    ours_t = spaced_timesteps(1000, steps)
    assert scheduler.timesteps.tolist() == ours_t
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 6, 6, generator=generator, dtype=torch.float64)
    checked = ours_t if steps < 1000 else ours_t[:20] + ours_t[-20:]
    for t in checked:
        index = ours_t.index(t)
        t_prev = ours_t[index + 1] if index + 1 < len(ours_t) else -1
        output, eps = model_output_and_eps(schedule, prediction, x, t, generator)
        seed = int(torch.randint(0, 2**31, (1,), generator=generator))
        expected = scheduler.step(output, t, x, generator=torch.Generator().manual_seed(seed)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        got = ddpm_step(schedule, eps, t, t_prev, x, noise)
        assert (got - expected).abs().max() <= TOLERANCE, (t, (got - expected).abs().max())
        x = expected


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("steps,eta", [(50, 0.0), (10, 1.0), (1000, 0.5)])
def test_ddim_steps_match_diffusers(prediction, steps, eta):
    schedule = NoiseSchedule()
    scheduler = diffusers.DDIMScheduler(**diffusers_kwargs("linear", prediction), set_alpha_to_one=True)
    in_float64(scheduler, schedule)
    scheduler.set_timesteps(steps)
    ours_t = spaced_timesteps(1000, steps)
    assert scheduler.timesteps.tolist() == ours_t
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 6, 6, generator=generator, dtype=torch.float64)
    for index, t in enumerate(ours_t[:30] + ours_t[-5:]):
        position = ours_t.index(t)
        t_prev = ours_t[position + 1] if position + 1 < len(ours_t) else -1
        output, eps = model_output_and_eps(schedule, prediction, x, t, generator)
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        expected = scheduler.step(output, t, x, eta=eta, variance_noise=noise).prev_sample
        got = ddim_step(schedule, eps, t, t_prev, x, eta, noise)
        assert (got - expected).abs().max() <= TOLERANCE, (t, (got - expected).abs().max())
        x = expected


def test_ddim_steps_to_the_next_listed_timestep_when_spacing_is_uneven():
    timesteps = spaced_timesteps(1000, 30)
    assert timesteps[0] == 999 and len(set(timesteps)) == 30
    assert all(a > b for a, b in zip(timesteps, timesteps[1:]))


def test_one_step_recovers_x0_from_an_oracle_denoiser():
    """With the true noise as prediction, every sampler returns the clean image."""
    schedule = NoiseSchedule()
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1

    def oracle(x_t, t):
        a = schedule.alpha_bar(t).float().reshape(-1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    for config in (SamplerConfig("onestep", 2, start_step=999), SamplerConfig("onestep", 1, start_step=300),
                   SamplerConfig("ddim", 10), SamplerConfig("ddpm", 20)):
        out = sample(oracle, schedule, config, x0.shape, torch.Generator().manual_seed(0), torch.device("cpu"), x0)
        torch.testing.assert_close(out, x0, atol=2e-3, rtol=0)


def test_sampling_is_reproducible_with_a_seed():
    model = UNet(UNetConfig(in_channels=1, out_channels=1, widths=(8, 16), attention=False)).eval()
    schedule = NoiseSchedule()

    def run(seed):
        with torch.no_grad():
            return sample(lambda x, t: model(x, t), schedule, SamplerConfig("ddim", 3, eta=1.0), torch.Size((2, 1, 16, 16)),
                          torch.Generator().manual_seed(seed), torch.device("cpu"))

    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))


@pytest.mark.parametrize("size", [120, 37])
def test_unet_shapes_and_parameter_budget(size):
    config = UNetConfig()
    model = UNet(config)
    assert 1e6 <= sum(p.numel() for p in model.parameters()) <= 4e6
    out = model(torch.randn(2, 4, size, size), torch.tensor([0, 999]))
    assert out.shape == (2, 1, size, size)
    segmenter = UNet(UNetConfig(in_channels=5, out_channels=1, widths=(8, 16, 32), time_embedding=False))
    assert segmenter(torch.randn(1, 5, size, size)).shape == (1, 1, size, size)
