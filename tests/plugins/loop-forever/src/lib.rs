//! A codec whose decoder never returns when a frame contains `loop`; every
//! other frame decodes as one content delta (`[DONE]` as a finish and the
//! end). The host must stop the call at its deadline, fail only that
//! response, and keep decoding the others.

use barrage_sdk::prelude::*;

pub struct LoopForever;

pub struct Spin;

impl Codec for LoopForever {
    type Decoder = Spin;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "loop-forever".into(),
            version: "0.1.0".into(),
            description: "spins on `loop` frames".into(),
        }
    }

    fn encode(_spec: RequestSpec) -> Result<EncodedRequest, String> {
        Err("not for sending".into())
    }

    fn decoder(_head: ResponseHead, _options: DecodeOptions) -> Spin {
        Spin
    }

    fn decode_unary(_head: ResponseHead, _body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

impl Decoder for Spin {
    fn push(&mut self, frames: Vec<Frame>) -> Result<Vec<FrameEvent>, String> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if f.data.windows(4).any(|w| w == b"loop") {
                #[allow(clippy::empty_loop)]
                loop {
                    std::hint::black_box(());
                }
            }
            // `[DONE]` ends the stream as a real codec's end would: a
            // finish reason and the end marker.
            if f.data == b"[DONE]" {
                out.push(FrameEvent {
                    frame: i as u32,
                    event: Event::Finish("stop".into()),
                });
                out.push(FrameEvent {
                    frame: i as u32,
                    event: Event::Done,
                });
                continue;
            }
            out.push(FrameEvent {
                frame: i as u32,
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

barrage_sdk::export_codec!(LoopForever);
