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

pub use batches::{EncodeStats, Example, Overflow, encode_example};
pub use schedule::Schedule;
pub use trainer::{TrainOutcome, TrainRun, TrainSettings, batch_nll, train};

use tokenizers::Tokenizer;

use crate::data::retrieval::Shots;
use crate::data::{ApiRecord, IndexedRecords, prompt, prompt_with_examples};

/// What a training example is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// The study's prompt as input and the record's code as target, EOS appended.
    Instruction,
    /// The record's code alone, EOS appended, every token a target: plain language modelling.
    Code,
}

/// Turns records into training examples.
#[derive(Clone, Copy)]
pub struct Encoder<'t> {
    pub tokenizer: &'t Tokenizer,
    pub objective: Objective,
    pub eos: u32,
    pub max_len: usize,
    /// Retrieved examples to put before each instruction prompt (a `retrieve` stage's).
    pub shots: Option<&'t Shots>,
}

impl Encoder<'_> {
    /// The example of `record`; `None` (counted in `stats`) when no target token fits.
    pub fn encode(
        &self,
        record: &ApiRecord,
        stats: &mut EncodeStats,
    ) -> anyhow::Result<Option<Example>> {
        let (text, overflow) = match (self.objective, self.shots) {
            (Objective::Instruction, None) => (prompt(record, &record.lang), Overflow::CutTarget),
            (Objective::Instruction, Some(shots)) => {
                let examples = shots.of("train", record);
                let text = prompt_with_examples(record, &record.lang, &examples);
                (text, Overflow::CutPromptStart)
            }
            (Objective::Code, _) => (String::new(), Overflow::CutTarget),
        };
        encode_example(
            self.tokenizer,
            (&text, &record.code),
            self.eos,
            (self.max_len, overflow),
            stats,
        )
        .map_err(|e| anyhow::anyhow!("record {}: {e}", record.unique_id))
    }
}

/// The study's prompt as input and the record's code as target, EOS appended.
pub fn encode_records(
    tokenizer: &Tokenizer,
    records: &[ApiRecord],
    eos: u32,
    max_len: usize,
) -> anyhow::Result<(Vec<Example>, EncodeStats)> {
    let encoder = Encoder {
        tokenizer,
        objective: Objective::Instruction,
        eos,
        max_len,
        shots: None,
    };
    encode_all(&encoder, records)
}

/// The record's code alone, EOS appended, every token a target: plain language modelling.
pub fn encode_code(
    tokenizer: &Tokenizer,
    records: &[ApiRecord],
    eos: u32,
    max_len: usize,
) -> anyhow::Result<(Vec<Example>, EncodeStats)> {
    let encoder = Encoder {
        tokenizer,
        objective: Objective::Code,
        eos,
        max_len,
        shots: None,
    };
    encode_all(&encoder, records)
}

fn encode_all(
    encoder: &Encoder,
    records: &[ApiRecord],
) -> anyhow::Result<(Vec<Example>, EncodeStats)> {
    let mut stats = EncodeStats::default();
    let mut examples = Vec::with_capacity(records.len());
    for record in records {
        examples.extend(encoder.encode(record, &mut stats)?);
    }
    ensure_some(examples.len(), encoder.max_len)?;
    Ok((examples, stats))
}

fn ensure_some(examples: usize, max_len: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        examples > 0,
        "no record fits in train.max_len = {max_len} tokens with at least one target token; raise max_len"
    );
    Ok(())
}

/// The examples of a training run, by index: what the trainer reads, whether the examples are
/// in memory or re-encoded from their records when a batch needs them.
pub trait ExampleSet: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Tokens of example `i` (for length bucketing).
    fn token_len(&self, i: usize) -> usize;
    /// Examples `indices`, in that order.
    fn fetch(&self, indices: &[usize]) -> anyhow::Result<Vec<Example>>;
}

impl ExampleSet for Vec<Example> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn token_len(&self, i: usize) -> usize {
        self[i].tokens.len()
    }

    fn fetch(&self, indices: &[usize]) -> anyhow::Result<Vec<Example>> {
        Ok(indices.iter().map(|&i| self[i].clone()).collect())
    }
}

/// Examples of the first N records of a `train.jsonl`, held as each record's position and token
/// count (12 bytes) and re-encoded when a batch needs them, so memory does not grow with N: the
/// 100K-sample arm holds 1.2 MB here where the encoded examples would take ~130 MB and the
/// records ~300 MB. Encoding is deterministic, so training is identical to encoding up front.
pub struct StreamedExamples<'t> {
    records: IndexedRecords,
    lengths: Vec<u32>,
    encoder: Encoder<'t>,
}

impl<'t> StreamedExamples<'t> {
    /// One pass over the first `limit` records of `path` (all when `None`): encodes each once to
    /// learn its length and whether it fits.
    pub fn scan(
        path: &std::path::Path,
        limit: Option<usize>,
        encoder: Encoder<'t>,
    ) -> anyhow::Result<(Self, EncodeStats)> {
        let mut stats = EncodeStats::default();
        let mut lengths = Vec::new();
        let mut failure = None;
        let records = IndexedRecords::scan(path, limit, |record| {
            match encoder.encode(record, &mut stats) {
                Ok(Some(example)) => {
                    lengths.push(example.tokens.len() as u32);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(e) => {
                    failure.get_or_insert(e);
                    Ok(false)
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        ensure_some(lengths.len(), encoder.max_len)?;
        Ok((
            Self {
                records,
                lengths,
                encoder,
            },
            stats,
        ))
    }
}

impl ExampleSet for StreamedExamples<'_> {
    fn len(&self) -> usize {
        self.lengths.len()
    }

    fn token_len(&self, i: usize) -> usize {
        self.lengths[i] as usize
    }

    fn fetch(&self, indices: &[usize]) -> anyhow::Result<Vec<Example>> {
        let mut ignored = EncodeStats::default();
        indices
            .iter()
            .map(|&i| {
                let record = self.records.get(i)?;
                let example = self.encoder.encode(&record, &mut ignored)?;
                // The scan kept this record because it encoded to an example of this length.
                example
                    .filter(|e| e.tokens.len() == self.lengths[i] as usize)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "record {} encodes differently than when the run started; was the training file changed?",
                            record.unique_id
                        )
                    })
            })
            .collect()
    }
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

    #[test]
    fn streamed_examples_are_the_examples_encoded_up_front() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models/gpt2-tiny/tokenizer.json");
        let tokenizer = crate::model::load_tokenizer(&path).unwrap();
        let records: Vec<ApiRecord> = (0..12)
            .map(|i| {
                // Every fourth record's instruction alone overflows max_len: it is dropped.
                let instruction = if i % 4 == 3 {
                    "list every pet ".repeat(40)
                } else {
                    format!("List pet {i}")
                };
                serde_json::from_value(serde_json::json!({
                    "api_name": "pets", "lang": "curl", "instruction": instruction,
                    "code": format!("curl https://x/pets/{i}?verbose=true"), "unique_id": i.to_string(),
                }))
                .unwrap()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("train.jsonl");
        let lines: Vec<String> = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        // Room for the short prompts and a few code tokens: long codes are cut, long prompts dropped.
        let prompt_tokens =
            crate::model::tokenizer::encode(&tokenizer, &prompt(&records[0], "curl"))
                .unwrap()
                .len();
        let max_len = prompt_tokens + 8;
        let (expected, expected_stats) =
            encode_records(&tokenizer, &records[..10], 0, max_len).unwrap();
        let encoder = Encoder {
            tokenizer: &tokenizer,
            objective: Objective::Instruction,
            eos: 0,
            max_len,
            shots: None,
        };
        let (streamed, stats) = StreamedExamples::scan(&file, Some(10), encoder).unwrap();
        assert_eq!(stats, expected_stats);
        assert!(stats.dropped == 2 && stats.truncated > 0, "{stats:?}");
        assert_eq!(streamed.len(), expected.len());
        let order: Vec<usize> = (0..expected.len()).rev().collect();
        assert_eq!(
            streamed.fetch(&order).unwrap(),
            expected.fetch(&order).unwrap()
        );
        for i in 0..expected.len() {
            assert_eq!(streamed.token_len(i), expected.token_len(i));
        }
    }
}
