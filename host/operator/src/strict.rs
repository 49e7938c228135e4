//! Reading a manifest into its Kubernetes type with unknown fields refused.
//! The API types (k8s-openapi's, and ours) drop a field they do not know, as
//! the API server prunes it: a misspelt key is silently lost. Here the
//! object is read, written back, and every key of the original must have
//! come back.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrictError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown field `{0}`: the type has no such field (misspelt, or at the wrong level)")]
    Unknown(String),
    #[error("`{path}` reads back as {back}, not {original}")]
    Changed {
        path: String,
        original: String,
        back: String,
    },
}

/// `value` as a `T`, refusing anything `T` would drop or change.
pub fn from_value<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, StrictError> {
    let typed: T = serde_path_to_error::deserialize(value.clone())
        .map_err(|e| StrictError::Invalid(format!("{}: {}", e.path(), e.inner())))?;
    let back = serde_json::to_value(&typed).map_err(|e| StrictError::Invalid(e.to_string()))?;
    compare(value, &back, &mut String::new())?;
    Ok(typed)
}

fn compare(original: &Value, back: &Value, path: &mut String) -> Result<(), StrictError> {
    match (original, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match b.get(key) {
                    Some(v) => compare(value, v, path)?,
                    // A null, an empty list or an empty map said nothing.
                    None if is_empty(value) => {}
                    None => return Err(StrictError::Unknown(path.clone())),
                }
                path.truncate(len);
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                compare(x, y, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(StrictError::Changed {
            path: path.clone(),
            original: a.to_string(),
            back: b.to_string(),
        }),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::Job;
    use serde_json::json;

    #[test]
    fn a_misspelt_field_is_named_with_its_path() {
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
            "spec": {"completionMode": "Indexed", "template": {"spec": {"containers": [
                {"name": "b", "image": "i", "arg": ["run"]}
            ]}}}
        });
        assert_eq!(
            from_value::<Job>(&job).unwrap_err(),
            StrictError::Unknown("spec.template.spec.containers[0].arg".into())
        );
        let mut ok = job.clone();
        ok["spec"]["template"]["spec"]["containers"][0] = json!({"name": "b", "image": "i", "args": ["run"]});
        from_value::<Job>(&ok).unwrap();
        ok["spec"]["completions"] = json!("four");
        assert!(
            matches!(from_value::<Job>(&ok).unwrap_err(), StrictError::Invalid(m) if m.contains("spec.completions"))
        );
    }
}
