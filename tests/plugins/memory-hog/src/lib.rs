//! A codec whose decoder allocates without bound when a frame contains `hog`;
//! every other frame decodes as one content delta (`[DONE]` as a finish and
//! the end). The host must refuse the growth at the memory limit, fail only
//! that response, and carry on.

use barrage_sdk::prelude::*;

pub struct MemoryHog;

pub struct Hog {
    hoard: Vec<Vec<u8>>,
}

impl Codec for MemoryHog {
    type Decoder = Hog;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "memory-hog".into(),
            version: "0.1.0".into(),
            description: "allocates on `hog` frames".into(),
        }
    }

    fn encode(_spec: RequestSpec) -> Result<EncodedRequest, String> {
        Err("not for sending".into())
    }

    fn decoder(_head: ResponseHead, _options: DecodeOptions) -> Hog {
        Hog { hoard: Vec::new() }
    }

    fn decode_unary(_head: ResponseHead, _body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

impl Decoder for Hog {
    fn push(&mut self, frames: Vec<Frame>) -> Result<Vec<FrameEvent>, String> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if f.data.windows(3).any(|w| w == b"hog") {
                loop {
                    // Touch the pages so nothing is optimised away.
                    let chunk = vec![0xA5u8; 1 << 20];
                    self.hoard.push(std::hint::black_box(chunk));
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

barrage_sdk::export_codec!(MemoryHog);
