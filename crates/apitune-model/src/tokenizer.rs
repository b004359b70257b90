//! Tokenizers: HF `tokenizer.json` files, and byte-level BPE training for models built from
//! scratch.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::error::{ModelError, Result};

/// The end-of-text token [`train_bpe`] reserves (id 0), as in GPT-2.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Loads a `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    if !path.is_file() {
        return Err(ModelError::Tokenizer {
            path: path.to_path_buf(),
            message: "file not found (every model directory needs a tokenizer.json)".into(),
        });
    }
    Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The largest token id `tokenizer` can produce (its model's vocabulary and the added tokens),
/// with its token; `None` for an empty vocabulary.
pub fn max_token_id(tokenizer: &Tokenizer) -> Option<(u32, String)> {
    let added = tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .map(|(id, token)| (token.content, id));
    tokenizer
        .get_vocab(true)
        .into_iter()
        .chain(added)
        .map(|(token, id)| (id, token))
        .max()
}

/// Fails unless every id `tokenizer` (read from `path`) can produce is a row of the model's
/// `vocab_size`-row embedding: a larger id would index past it as soon as a text contains it.
pub fn check_fits_vocab(tokenizer: &Tokenizer, vocab_size: usize, path: &Path) -> Result<()> {
    let Some((id, token)) = max_token_id(tokenizer) else {
        return Ok(());
    };
    if (id as usize) < vocab_size {
        return Ok(());
    }
    Err(ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: format!(
            "token {token:?} has id {id}, but the model's vocab_size is {vocab_size} (ids 0 to {}); \
             the tokenizer and config.json do not belong to the same model",
            vocab_size.saturating_sub(1)
        ),
    })
}

/// Trains a GPT-2-style byte-level BPE tokenizer on `texts` with at most `vocab_size` entries
/// (the 256 byte symbols and [`END_OF_TEXT`] included). Save it with
/// `tokenizer.save(path, false)` as a `tokenizer.json` that HF tokenizers reads too.
pub fn train_bpe<S: AsRef<str> + Send>(
    texts: impl Iterator<Item = S> + Send,
    vocab_size: usize,
) -> Result<Tokenizer> {
    let min_size = ByteLevel::alphabet().len() + 1;
    if vocab_size < min_size {
        return Err(ModelError::InvalidInput(format!(
            "train_bpe: vocab_size {vocab_size} is below {min_size} (256 byte symbols + {END_OF_TEXT})"
        )));
    }
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(0)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    tokenizer
        .train(&mut trainer, texts)
        .map_err(|e| ModelError::InvalidInput(format!("train_bpe: {e}")))?;
    Ok(tokenizer)
}

/// Token ids of `text`, without added special tokens.
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    tokenizer
        .encode(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| ModelError::InvalidInput(format!("cannot tokenize {text:?}: {e}")))
}

/// Text of `ids`, special tokens skipped.
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String> {
    tokenizer
        .decode(ids, true)
        .map_err(|e| ModelError::InvalidInput(format!("cannot decode token ids {ids:?}: {e}")))
}
