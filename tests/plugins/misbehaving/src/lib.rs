//! A codec that misbehaves on cue: a frame containing `loop` never returns,
//! one containing `hog` allocates without bound. Every other frame decodes
//! as one content delta (`[DONE]` as a finish and the end). The host must
//! stop the call at its deadline or the growth at the memory limit, fail
//! only that response, and keep decoding the others.

use barrage_sdk::prelude::*;

pub struct Misbehaving;

pub struct Stream {
    hoard: Vec<Vec<u8>>,
}

impl Codec for Misbehaving {
    type Decoder = Stream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehaving".into(),
            version: "0.1.0".into(),
            description: "spins on `loop` frames, allocates on `hog` frames".into(),
            secrets: Vec::new(),
        }
    }

    fn encode(_spec: RequestSpec) -> Result<EncodedRequest, String> {
        Err("not for sending".into())
    }

    fn decoder(_head: ResponseHead, _options: DecodeOptions) -> Stream {
        Stream { hoard: Vec::new() }
    }

    fn decode_unary(_head: ResponseHead, _body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

impl Decoder for Stream {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let frame = i as u32;
            if f.data.windows(4).any(|w| w == b"loop") {
                #[allow(clippy::empty_loop)]
                loop {
                    std::hint::black_box(());
                }
            }
            if f.data.windows(3).any(|w| w == b"hog") {
                loop {
                    // Touch the pages so nothing is optimised away.
                    let chunk = vec![0xA5u8; 1 << 20];
                    self.hoard.push(std::hint::black_box(chunk));
                }
            }
            if f.data == b"[DONE]" {
                out.push(FrameEvent {
                    frame,
                    event: Event::Finish("stop".into()),
                });
                out.push(FrameEvent {
                    frame,
                    event: Event::Done,
                });
                continue;
            }
            out.push(FrameEvent {
                frame,
                event: Event::Content(ContentDelta {
                    bytes: f.data.len() as u32,
                    tokens: Some(1),
                    text: None,
                }),
            });
        }
        Ok(out)
    }
}

barrage_sdk::export_codec!(Misbehaving);
