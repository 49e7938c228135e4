//! Barrage codec for OpenAI-compatible `/v1/chat/completions` (vLLM, SGLang, TGI,
//! llama.cpp, hosted APIs). The wire format lives in `openai-common`, shared
//! with the other OpenAI codec.

barrage_sdk::export_codec!(openai_common::ChatCodec);
