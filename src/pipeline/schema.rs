//! JSON Schema of the manifest, generated from the same types that read it, so editors (taplo,
//! Even Better TOML) complete and check manifests. `schemas/manifest.schema.json` is this output.

use indexmap::IndexMap;
use schemars::{Schema, generate::SchemaSettings, json_schema};
use serde_json::{Value, json};

use crate::manifest::limits::MAX_NAME_LEN;
use crate::manifest::{CacheSection, ExecutorSection, Expectation, Experiment, ModelSpec};
use crate::stages;

/// The manifest's schema (draft 2020-12) as pretty JSON with a trailing newline.
pub fn manifest_schema_json() -> String {
    let mut text =
        serde_json::to_string_pretty(&manifest_schema()).expect("a schema is plain JSON");
    text.push('\n');
    text
}

pub fn manifest_schema() -> Schema {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let experiment = generator.subschema_for::<Experiment>();
    let names = json!({ "pattern": format!("^[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}$") });
    let mut models = generator.subschema_for::<IndexMap<String, ModelSpec>>();
    models.insert("propertyNames".into(), names.clone());
    let expect = generator.subschema_for::<IndexMap<String, Expectation>>();
    let cache = generator.subschema_for::<CacheSection>();
    let executor = generator.subschema_for::<ExecutorSection>();
    let stage_variants: Vec<Value> = stages::registry()
        .iter()
        .map(|kind| {
            let mut params = kind.params_schema(&mut generator).to_value();
            let props = params
                .as_object_mut()
                .and_then(|o| {
                    o.entry("properties").or_insert_with(|| json!({}));
                    o.get_mut("properties")
                })
                .and_then(Value::as_object_mut)
                .expect("stage params are a struct");
            props.insert("kind".into(), json!({ "const": kind.kind() }));
            props.insert("needs".into(), json!({
                "description": "Stages whose artifacts this stage reads; it fans out over their matrix arms.",
                "type": "array", "items": { "type": "string" } }));
            props.insert("matrix".into(), json!({
                "description": "Param (dotted path) -> values; the stage runs once per combination, as arms named like `lora[samples=1000]`.",
                "type": "object", "additionalProperties": { "type": "array", "minItems": 1 } }));
            let obj = params.as_object_mut().expect("object");
            let required = obj.entry("required").or_insert_with(|| json!([]));
            required.as_array_mut().expect("array").push(json!("kind"));
            obj.insert("title".into(), json!(format!("stage of kind `{}`", kind.kind())));
            params
        })
        .collect();
    let mut root = json_schema!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "apitune experiment manifest",
        "type": "object",
        "additionalProperties": false,
        "required": ["experiment", "stages"],
        "properties": {
            "experiment": experiment,
            "models": models,
            "stages": { "type": "object", "propertyNames": names, "additionalProperties": { "oneOf": stage_variants } },
            "expect": expect,
            "cache": cache,
            "executor": executor,
        },
    });
    let defs: serde_json::Map<String, Value> = generator.take_definitions(true);
    if !defs.is_empty() {
        root.insert("$defs".into(), Value::Object(defs));
    }
    root
}
