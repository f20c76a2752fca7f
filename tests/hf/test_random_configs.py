"""Small random configs of every family: our count equals transformers' on the meta device, and the config
survives config -> spec -> config and spec -> config -> spec."""

import random

import pytest

from archsearch.hf import export_hf_config, import_hf_config
from archsearch.spec import count_parameters

SEEDS = range(6)


def _divisor(rng, n):
    return rng.choice([d for d in range(1, n + 1) if n % d == 0])


def nemotron_h(rng):
    heads = rng.choice([2, 4, 8])
    attn = rng.choice([2, 4])
    symbols = [rng.choice("M*-") for _ in range(rng.randint(1, 8))]
    config = {
        "model_type": "nemotron_h", "vocab_size": rng.randint(50, 300), "hidden_size": rng.choice([32, 48, 64]),
        "mamba_num_heads": heads, "mamba_head_dim": rng.choice([8, 16]), "n_groups": _divisor(rng, heads),
        "ssm_state_size": rng.choice([4, 8, 16]), "conv_kernel": rng.choice([2, 3, 4]),
        "num_attention_heads": attn, "num_key_value_heads": _divisor(rng, attn), "head_dim": rng.choice([8, 16]),
        "intermediate_size": rng.randint(16, 96), "use_bias": rng.random() < 0.5,
        "use_conv_bias": rng.random() < 0.5, "mlp_bias": rng.random() < 0.5,
        "tie_word_embeddings": rng.random() < 0.5, "mlp_hidden_act": rng.choice(["relu2", "silu", "gelu"]),
        "max_position_embeddings": 512,
    }
    if rng.random() < 0.5:
        config["hybrid_override_pattern"] = "".join(symbols)
    else:
        config["layers_block_type"] = [{"M": "mamba", "*": "attention", "-": "mlp"}[s] for s in symbols]
    return config


def mamba2(rng):
    hidden, expand, head_dim = rng.choice([32, 64]), rng.choice([1, 2]), rng.choice([8, 16])
    heads = expand * hidden // head_dim
    return {"model_type": "mamba2", "vocab_size": rng.randint(50, 300), "hidden_size": hidden, "expand": expand,
            "num_heads": heads, "head_dim": head_dim, "n_groups": _divisor(rng, heads),
            "state_size": rng.choice([4, 16]), "num_hidden_layers": rng.randint(1, 4),
            "use_bias": rng.random() < 0.5, "use_conv_bias": rng.random() < 0.5,
            "tie_word_embeddings": rng.random() < 0.5}


def _transformer(rng, model_type):
    heads = rng.choice([2, 4, 8])
    config = {"model_type": model_type, "vocab_size": rng.randint(50, 300), "hidden_size": heads * rng.choice([8, 16]),
              "num_attention_heads": heads, "num_key_value_heads": _divisor(rng, heads),
              "num_hidden_layers": rng.randint(1, 5), "intermediate_size": rng.randint(16, 96),
              "tie_word_embeddings": rng.random() < 0.5, "max_position_embeddings": 1024,
              "rope_theta": rng.choice([10000.0, 1e6])}
    if model_type != "qwen2":
        config["attention_bias"] = rng.random() < 0.5
        if rng.random() < 0.5:
            config["head_dim"] = rng.choice([8, 16, 32])
    return config


def llama(rng):
    return {**_transformer(rng, "llama"), "mlp_bias": rng.random() < 0.5,
            "hidden_act": rng.choice(["silu", "gelu_pytorch_tanh", "relu"])}


def qwen(rng, model_type):
    config = _transformer(rng, model_type)
    if rng.random() < 0.6:
        config.update(use_sliding_window=True, sliding_window=rng.choice([16, 64]),
                      max_window_layers=rng.randint(0, config["num_hidden_layers"]))
    return config


def gemma2(rng):
    config = _transformer(rng, "gemma2")
    config.update(query_pre_attn_scalar=rng.choice([16, 24, 64]), sliding_window=rng.choice([16, 64]),
                  attn_logit_softcapping=rng.choice([None, 50.0]), final_logit_softcapping=rng.choice([None, 30.0]),
                  hidden_activation=rng.choice(["gelu_pytorch_tanh", "silu"]))
    if rng.random() < 0.5:
        config["layer_types"] = [rng.choice(["sliding_attention", "full_attention"])
                                 for _ in range(config["num_hidden_layers"])]
    return config


FAMILIES = {"nemotron_h": nemotron_h, "mamba2": mamba2, "llama": llama, "gemma2": gemma2,
            "qwen2": lambda rng: qwen(rng, "qwen2"), "qwen3": lambda rng: qwen(rng, "qwen3")}

# What transformers reads from a config, per family: both configs must agree on each after a round trip.
FIELDS = ["vocab_size", "hidden_size", "num_hidden_layers", "tie_word_embeddings", "intermediate_size",
          "num_attention_heads", "num_key_value_heads", "head_dim", "attention_bias", "mlp_bias", "sliding_window",
          "layer_types", "layers_block_type", "query_pre_attn_scalar", "attn_logit_softcapping",
          "final_logit_softcapping", "hidden_act", "hidden_activation", "mlp_hidden_act", "mamba_num_heads",
          "mamba_head_dim", "num_heads", "expand", "n_groups", "ssm_state_size", "state_size", "conv_kernel",
          "use_bias", "use_conv_bias", "chunk_size", "rms_norm_eps", "layer_norm_epsilon"]


# Fields that only matter when the model has a layer of that type (NemotronH) or a sliding-window layer.
_ONLY_WITH = {"linear_attention": ["mamba_num_heads", "mamba_head_dim", "n_groups", "ssm_state_size", "conv_kernel",
                                   "use_bias", "use_conv_bias", "chunk_size"],
              "full_attention": ["num_attention_heads", "num_key_value_heads", "head_dim"],
              "mlp": ["intermediate_size", "mlp_bias", "mlp_hidden_act"]}


def _view(hf):
    out = {name: getattr(hf, name, None) for name in FIELDS}
    rope = getattr(hf, "rope_parameters", None) or {}
    out["rope_theta"] = rope.get("rope_theta")
    types = getattr(hf, "layer_types", None) or []
    if hf.model_type == "nemotron_h":
        out["tie_word_embeddings"] = None  # transformers' NemotronH never ties, whatever the config says
        for layer_type, fields in _ONLY_WITH.items():
            if layer_type not in types:
                out.update(dict.fromkeys(fields))
    if "sliding_attention" not in types:
        out["sliding_window"] = None
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_random_config(family, seed, hf_count, hf_config_of):
    config = FAMILIES[family](random.Random(f"{family}-{seed}"))
    spec = import_hf_config(config)
    assert count_parameters(spec).total == hf_count(config)
    exported = export_hf_config(spec)
    assert exported["model_type"] == config["model_type"] or (family == "nemotron_h" and set(
        spec.pattern_string) == {"M"} and exported["model_type"] == "mamba2")
    if exported["model_type"] == config["model_type"]:
        assert _view(hf_config_of(exported)) == _view(hf_config_of(config))  # config -> spec -> config
    again = import_hf_config(exported)
    assert again.spec_hash() == spec.spec_hash()  # spec -> config -> spec
    assert export_hf_config(again) == exported
