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
    let mut stats = EncodeStats::default();
    let mut examples = Vec::with_capacity(records.len());
    for record in records {
        let text = prompt(record, &record.lang);
        if let Some(example) = encode_example(tokenizer, &text, &record.code, eos, max_len, &mut stats)
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
