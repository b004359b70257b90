//! Training: tokenized examples and their batch order ([`batches`]), learning-rate schedules
//! ([`schedule`]), the loop itself ([`trainer`]) and its checkpoints ([`checkpoint`]).
//!
//! The `pretrain` and `lora-train` stages build a network (random, or a base with LoRA factors
//! whose base is frozen), encode their records with [`encode_records`], and call [`train`].

pub mod batches;
pub mod checkpoint;
pub mod params;
pub mod schedule;
pub mod trainer;

pub use batches::{EncodeStats, Example, encode_example};
pub use schedule::Schedule;
pub use trainer::{TrainOutcome, TrainRun, TrainSettings, batch_nll, train};

use tokenizers::Tokenizer;

use crate::data::{ApiRecord, prompt};

/// The study's prompt as input and the record's code as target, EOS appended.
pub fn encode_records(
    tokenizer: &Tokenizer,
    records: &[ApiRecord],
    eos: u32,
    max_len: usize,
) -> anyhow::Result<(Vec<Example>, EncodeStats)> {
    encode_with(tokenizer, records, eos, max_len, |record| {
        prompt(record, &record.lang)
    })
}

/// The record's code alone, EOS appended, every token a target: plain language modelling.
pub fn encode_code(
    tokenizer: &Tokenizer,
    records: &[ApiRecord],
    eos: u32,
    max_len: usize,
) -> anyhow::Result<(Vec<Example>, EncodeStats)> {
    encode_with(tokenizer, records, eos, max_len, |_| String::new())
}

fn encode_with(
    tokenizer: &Tokenizer,
    records: &[ApiRecord],
    eos: u32,
    max_len: usize,
    prompt_of: impl Fn(&ApiRecord) -> String,
) -> anyhow::Result<(Vec<Example>, EncodeStats)> {
    let mut stats = EncodeStats::default();
    let mut examples = Vec::with_capacity(records.len());
    for record in records {
        let text = prompt_of(record);
        if let Some(example) =
            encode_example(tokenizer, &text, &record.code, eos, max_len, &mut stats)
                .map_err(|e| anyhow::anyhow!("record {}: {e}", record.unique_id))?
        {
            examples.push(example);
        }
    }
    anyhow::ensure!(
        !examples.is_empty(),
        "no record fits in train.max_len = {max_len} tokens with at least one target token; raise max_len"
    );
    Ok((examples, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_examples_mask_the_prompt_and_code_examples_train_on_every_token() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models/gpt2-tiny/tokenizer.json");
        let tokenizer = crate::model::load_tokenizer(&path).unwrap();
        let record: ApiRecord = serde_json::from_value(serde_json::json!({
            "api_name": "pets", "lang": "curl", "instruction": "List the pets", "code": "curl https://x/pets", "unique_id": "1",
        }))
        .unwrap();
        let code_tokens = crate::model::tokenizer::encode(&tokenizer, &record.code).unwrap();
        let (code, _) = encode_code(&tokenizer, std::slice::from_ref(&record), 0, 512).unwrap();
        assert_eq!(code[0].tokens[..code_tokens.len()], code_tokens[..]);
        assert_eq!(code[0].tokens.len(), code_tokens.len() + 1, "EOS appended");
        assert_eq!(
            code[0].target_start, 1,
            "every token after the first is a target"
        );
        let (instruction, _) =
            encode_records(&tokenizer, std::slice::from_ref(&record), 0, 512).unwrap();
        assert!(instruction[0].target_start > 10, "the prompt is masked");
        assert_eq!(
            instruction[0].tokens[instruction[0].target_start..],
            code[0].tokens[..]
        );
    }
}
