//! Models built from a config alone (random init) and tokenizers trained from a corpus.

use crate::model_support;

use apitune::model::gpt2::Gpt2Config;
use apitune::model::gpt2::GptBigCodeConfig;
use apitune::model::qwen2::Qwen2Config;
use apitune::model::tokenizer::{decode, encode};
use apitune::model::{
    CausalLm, END_OF_TEXT, ForwardInput, GenerationConfig, ModelConfig, generate_tokens,
    load_tokenizer, train_bpe,
};
use model_support::device;

fn configs() -> Vec<ModelConfig> {
    vec![
        ModelConfig::Gpt2(Gpt2Config::new(300, 32, 32, 2, 4)),
        ModelConfig::GptBigCode(GptBigCodeConfig::new(300, 32, 32, 2, 4)),
        ModelConfig::Qwen2(Qwen2Config::new(300, 32, 64, 2, 4, 2)),
    ]
}

#[test]
fn random_models_run_and_are_reproducible_per_seed() {
    for config in configs() {
        let run = |seed: u64| {
            let device = device();
            let model = CausalLm::init(&config, &device, seed);
            let input = ForwardInput::causal(&[vec![1, 2, 3, 4], vec![5, 6, 7, 8]], &device);
            let logits = model.forward(&input, None);
            assert_eq!(logits.dims(), [2, 4, 300], "{}", config.model_type());
            logits.into_data().try_into_vec::<f32>().unwrap()
        };
        let a = run(7);
        assert!(a.iter().all(|x| x.is_finite()));
        assert!(a.iter().any(|&x| x != 0.0));
        assert!(
            a == run(7),
            "{}: same seed, same weights",
            config.model_type()
        );
        assert!(
            a != run(8),
            "{}: other seed, other weights",
            config.model_type()
        );
    }
}

#[test]
fn random_models_generate() {
    for config in configs() {
        let device = device();
        let model = CausalLm::init(&config, &device, 0);
        let out = generate_tokens(
            &model,
            &[vec![3, 4, 5], vec![9]],
            &GenerationConfig::greedy(6),
            config.max_positions(),
            &device,
            &mut |_, _| false,
        )
        .unwrap();
        assert!(
            out.iter()
                .all(|g| g.tokens.len() == 6 && g.tokens.iter().all(|&t| (t as usize) < 300))
        );
    }
}

#[test]
fn config_round_trips_through_hf_json() {
    for config in configs() {
        let json = serde_json::to_string(&config).unwrap();
        assert!(
            json.contains(&format!("\"model_type\":\"{}\"", config.model_type())),
            "{json}"
        );
        let back = ModelConfig::from_json(&json, std::path::Path::new("config.json")).unwrap();
        assert_eq!(back, config);
    }
}

#[test]
fn qwen2_reads_rope_theta_old_and_new_style() {
    let base = r#"{"model_type": "qwen2", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1"#;
    let path = std::path::Path::new("config.json");
    let old =
        ModelConfig::from_json(&format!("{base}, \"rope_theta\": 1000000.0}}"), path).unwrap();
    let new = ModelConfig::from_json(
        &format!(
            "{base}, \"rope_parameters\": {{\"rope_theta\": 500.0, \"rope_type\": \"default\"}}}}"
        ),
        path,
    )
    .unwrap();
    let (ModelConfig::Qwen2(old), ModelConfig::Qwen2(new)) = (old, new) else {
        panic!()
    };
    assert_eq!(old.rope_theta(), 1e6);
    assert_eq!(new.rope_theta(), 500.0);
    let err = ModelConfig::from_json(
        &format!("{base}, \"rope_scaling\": {{\"type\": \"yarn\", \"factor\": 4.0}}}}"),
        path,
    )
    .unwrap_err();
    assert!(err.to_string().contains("rope_scaling"), "{err}");
}

const CORPUS: &[&str] = &[
    "curl --request GET --url https://api.example.com/v1/users --header 'accept: application/json'",
    "import requests\nresponse = requests.get('https://api.example.com/v1/users')",
    "fetch('https://api.example.com/v1/pets', { method: 'POST' })",
    "Return the list of users of the account.",
];

#[test]
fn trained_bpe_tokenizer_round_trips_and_reloads() {
    let tokenizer = train_bpe(CORPUS.iter().cycle().take(40), 300).unwrap();
    let vocab = tokenizer.get_vocab_size(true);
    assert!(vocab > 257 && vocab <= 300, "vocab {vocab}");
    assert_eq!(tokenizer.token_to_id(END_OF_TEXT), Some(0));

    let text = "curl --request GET --url https://api.example.com/v1/users/{id} — ünïcode ✓";
    let ids = encode(&tokenizer, text).unwrap();
    assert!(ids.len() < text.len(), "merges shorten common text");
    assert_eq!(decode(&tokenizer, &ids).unwrap(), text);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    tokenizer.save(&path, false).unwrap();
    let reloaded = load_tokenizer(&path).unwrap();
    assert_eq!(encode(&reloaded, text).unwrap(), ids);
    assert_eq!(reloaded.token_to_id(END_OF_TEXT), Some(0));
}

#[test]
fn bpe_training_rejects_a_vocabulary_below_the_byte_alphabet() {
    let err = train_bpe(CORPUS.iter(), 100).unwrap_err();
    assert!(err.to_string().contains("vocab_size 100"), "{err}");
}

#[test]
fn unreadable_tokenizer_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{ not json").unwrap();
    let err = load_tokenizer(&path).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn random_model_with_trained_tokenizer_generates_text() {
    let tokenizer = train_bpe(CORPUS.iter().cycle().take(40), 300).unwrap();
    let config = ModelConfig::Gpt2(Gpt2Config::new(
        tokenizer.get_vocab_size(true),
        64,
        32,
        2,
        4,
    ));
    let model = apitune::model::Model::random(config, tokenizer, &device(), 5);
    assert_eq!(model.special_tokens.eos_token_id, vec![0]);
    let out = apitune::model::generate(&model, &["curl --request"], &GenerationConfig::greedy(8))
        .unwrap();
    assert!(!out[0].token_ids.is_empty() && out[0].token_ids.len() <= 8);
}
