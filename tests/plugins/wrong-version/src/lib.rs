//! A plugin built against a contract version this host does not support
//! (`barrage:plugin@0.9.0`). Loading it must fail with a message naming the
//! plugin, the version it targets and the versions the host supports.

wit_bindgen::generate!({
    inline: r#"
        package barrage:plugin@0.9.0;

        interface meta {
            record plugin-info { name: string, version: string, description: string }
            info: func() -> plugin-info;
        }

        interface request-codec {
            encode: func(prompt: string) -> result<list<u8>, string>;
        }

        world codec {
            export meta;
            export request-codec;
        }
    "#,
    world: "codec",
});

struct Future;

impl exports::barrage::plugin::meta::Guest for Future {
    fn info() -> exports::barrage::plugin::meta::PluginInfo {
        exports::barrage::plugin::meta::PluginInfo {
            name: "wrong-version".into(),
            version: "0.1.0".into(),
            description: "from the future".into(),
        }
    }
}

impl exports::barrage::plugin::request_codec::Guest for Future {
    fn encode(prompt: String) -> Result<Vec<u8>, String> {
        Ok(prompt.into_bytes())
    }
}

export!(Future);
