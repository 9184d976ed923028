"""load_model_config: Hugging Face config.json -> ModelConfig, with hand-written published sizes."""
import json
from dataclasses import replace

import pytest

from mpcache.models import MODELS, get_model, load_model_config

LLAMA2_7B = {"model_type": "llama", "_name_or_path": "meta-llama/Llama-2-7b-hf", "hidden_size": 4096,
             "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32,
             "num_hidden_layers": 32, "hidden_act": "silu", "rms_norm_eps": 1e-5, "vocab_size": 32000}
LLAMA3_8B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
             "num_key_value_heads": 8, "num_hidden_layers": 32, "hidden_act": "silu", "rope_theta": 500000.0,
             "vocab_size": 128256}
SMOLLM2 = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9,
           "num_key_value_heads": 3, "num_hidden_layers": 30, "hidden_act": "silu", "tie_word_embeddings": True}
GPT2 = {"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "n_inner": None,
        "activation_function": "gelu_new", "vocab_size": 50257}
MISTRAL_7B = {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
              "num_key_value_heads": 8, "num_hidden_layers": 32, "hidden_act": "silu", "sliding_window": 4096}
QWEN2_7B = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28,
            "num_key_value_heads": 4, "num_hidden_layers": 28, "hidden_act": "silu", "use_sliding_window": False,
            "sliding_window": 131072, "max_window_layers": 28}


def _same_shape(loaded, builtin):
    assert replace(loaded, name=builtin.name, source=builtin.source) == builtin


@pytest.mark.parametrize("cfg, builtin", [(LLAMA2_7B, "llama2-7b"), (LLAMA3_8B, "llama3-8b"),
                                          (SMOLLM2, "smollm2"), (GPT2, "gpt2")])
def test_published_configs_equal_the_builtins(cfg, builtin):
    _same_shape(load_model_config(cfg, name="x"), MODELS[builtin])


def test_name_and_source_from_a_dict():
    m = load_model_config(LLAMA2_7B)
    assert m.name == "meta-llama/Llama-2-7b-hf" and m.source == "Hugging Face config (dict)"
    assert load_model_config(LLAMA2_7B, name="mine").name == "mine"
    assert load_model_config(LLAMA3_8B, name="l3").kv_heads == 8


def test_mistral_like_with_sliding_window():
    m = load_model_config(MISTRAL_7B, name="mistral-7b")
    assert (m.layers, m.heads, m.n_kv_heads, m.head_dim, m.hidden, m.mlp) == (32, 32, 8, 128, 4096, 14336)
    assert m.gated_mlp and m.norm == "rmsnorm" and m.activation == "silu"


def test_qwen2_like_and_explicit_head_dim():
    m = load_model_config(QWEN2_7B, name="qwen2-7b")
    assert (m.heads, m.n_kv_heads, m.head_dim, m.q_width, m.kv_width, m.mlp) == (28, 4, 128, 3584, 512, 18944)
    # an explicit head_dim wins, also when heads * head_dim != hidden (e.g. Mistral-Nemo: 5120 wide, 32 x 128)
    nemo = load_model_config({**MISTRAL_7B, "hidden_size": 5120, "head_dim": 128}, name="nemo")
    assert nemo.head_dim == 128 and nemo.q_width == 4096 and nemo.hidden == 5120


def test_gelu_variants_and_default_mlp():
    assert load_model_config({**LLAMA3_8B, "hidden_act": "gelu_pytorch_tanh"}, name="g").activation == "gelu"
    gpt2 = load_model_config({k: v for k, v in GPT2.items() if k != "n_inner"}, name="g")
    assert gpt2.mlp == 3072 and gpt2.kv_heads is None and not gpt2.gated_mlp and gpt2.norm == "layernorm"
    assert load_model_config({**GPT2, "n_inner": 1000}, name="g").mlp == 1000


def test_file_and_directory_paths(tmp_path):
    model_dir = tmp_path / "SmolLM2-135M"
    model_dir.mkdir()
    file = model_dir / "config.json"
    file.write_text(json.dumps(SMOLLM2))
    for arg in (file, str(file), model_dir, str(model_dir)):
        m = load_model_config(arg)
        assert m.name == "SmolLM2-135M"
        assert m.source == f"Hugging Face config {file}"
        _same_shape(m, MODELS["smollm2"])
    file.write_text(json.dumps({**SMOLLM2, "_name_or_path": "HuggingFaceTB/SmolLM2-135M"}))
    assert load_model_config(model_dir).name == "HuggingFaceTB/SmolLM2-135M"


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_model_config(tmp_path)  # a directory without config.json
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        load_model_config(tmp_path)


def test_unknown_model_type_names_the_file_and_what_is_supported(tmp_path):
    file = tmp_path / "config.json"
    file.write_text(json.dumps({**LLAMA3_8B, "model_type": "qwen3"}))
    with pytest.raises(ValueError) as e:
        load_model_config(file)
    msg = str(e.value)
    assert str(file) in msg and "'qwen3'" in msg and "llama, mistral, qwen2, gpt2" in msg


@pytest.mark.parametrize("extra, words", [
    ({"model_type": "mixtral", "num_local_experts": 8}, ["num_local_experts", "mixture-of-experts", "'mixtral'"]),
    ({"num_experts": 60}, ["num_experts", "mixture-of-experts"]),
    ({"model_type": "deepseek_v3", "kv_lora_rank": 512}, ["kv_lora_rank", "multi-head latent attention"]),
])
def test_unpriceable_attention_or_mlp_is_refused(extra, words):
    with pytest.raises(ValueError) as e:
        load_model_config({**MISTRAL_7B, **extra}, name="x")
    for word in words:
        assert word in str(e.value)


def test_missing_key_bad_activation_and_bad_sizes():
    with pytest.raises(ValueError, match="missing required key.*intermediate_size"):
        load_model_config({k: v for k, v in LLAMA2_7B.items() if k != "intermediate_size"})
    with pytest.raises(ValueError, match="missing required key.*n_head"):
        load_model_config({k: v for k, v in GPT2.items() if k != "n_head"}, name="g")
    with pytest.raises(ValueError, match="hidden_act 'relu' cannot be priced; supported: silu"):
        load_model_config({**LLAMA2_7B, "hidden_act": "relu"})
    with pytest.raises(ValueError, match="activation_function 'quick_gelu'"):
        load_model_config({**GPT2, "activation_function": "quick_gelu"}, name="g")
    with pytest.raises(ValueError, match="4100 is not divisible by 32 heads and no head_dim"):
        load_model_config({**LLAMA2_7B, "hidden_size": 4100})
    with pytest.raises(ValueError, match="'llama'.*kv_heads must divide heads"):
        load_model_config({**LLAMA2_7B, "num_key_value_heads": 5})
    with pytest.raises(ValueError, match="cross-attention"):
        load_model_config({**GPT2, "add_cross_attention": True}, name="g")
    with pytest.raises(ValueError, match="pass name="):
        load_model_config(LLAMA3_8B)


def test_get_model_keeps_builtins_and_hints_at_model_config():
    assert get_model("llama3-8b") is MODELS["llama3-8b"]
    with pytest.raises(ValueError, match="unknown model 'llama9'.*--model-config"):
        get_model("llama9")
