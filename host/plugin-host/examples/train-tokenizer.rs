//! Train a byte-level BPE `tokenizer.json` with the `tokenizers` crate (the
//! library Hugging Face's tokenizers are made with), for benchmarks that
//! need a real tokenizer file on a machine without network access to a
//! model hub.
//!
//!     cargo run --release -p barrage-plugin-host --example train-tokenizer -- CORPUS.txt OUT/tokenizer.json [VOCAB]

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [corpus, out, rest @ ..] = args.as_slice() else {
        return Err("usage: train-tokenizer CORPUS.txt OUT/tokenizer.json [VOCAB_SIZE]".into());
    };
    let vocab = rest.first().map(|v| v.parse()).transpose()?.unwrap_or(32_000);
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab)
        .min_frequency(2)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![
            AddedToken::from("<|im_start|>", true),
            AddedToken::from("<|im_end|>", true),
        ])
        .build()
        .into();
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(ByteLevel::default()));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.train_from_files(&mut trainer, vec![corpus.clone()])?;
    tokenizer.save(out, false)?;
    eprintln!("{out}: {} tokens", tokenizer.get_vocab_size(true));
    Ok(())
}
