//! Local `$ref` resolution and example values from schemas.
//!
//! Only document-local references (`#/components/...`, any JSON pointer into the same file) are
//! followed; external ones (`other.yaml#/...`) are reported as unresolved and the part they stand
//! for is left out. Schema walks keep the stack of references being expanded, so recursive schemas
//! (a `Node` with `children: [Node]`) stop instead of looping.

use serde_json::{Map, Value};

/// Longest `$ref` chain followed (a ref to a ref to ...) before giving up.
const MAX_REF_HOPS: usize = 32;
/// Deepest nesting an example body is expanded to.
const MAX_EXAMPLE_DEPTH: usize = 6;
/// Most schema nodes expanded for one example: big specs (cloud providers) have schemas whose
/// full expansion is exponential in the depth.
const MAX_EXAMPLE_NODES: usize = 200;
/// Most properties of one object put into an example body.
const MAX_EXAMPLE_PROPERTIES: usize = 40;

pub struct Resolver<'a> {
    root: &'a Value,
    /// References that could not be followed (external, dangling, or a ref loop).
    pub unresolved: std::cell::Cell<u64>,
    /// Schema nodes the current example may still expand.
    budget: std::cell::Cell<usize>,
}

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Value) -> Self {
        Self {
            root,
            unresolved: std::cell::Cell::new(0),
            budget: std::cell::Cell::new(0),
        }
    }

    fn lookup(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        // A `$ref` is a URI fragment, so `{` may be written `%7B` (1,034 refs in APIs.guru's collection).
        self.root.pointer(pointer).or_else(|| {
            let decoded = percent_decode(pointer)?;
            self.root.pointer(&decoded)
        })
    }

    /// Follows `$ref` chains from `value`; `None` (and a count) when a ref cannot be followed.
    pub fn resolve(&self, value: &'a Value) -> Option<&'a Value> {
        let mut current = value;
        for _ in 0..MAX_REF_HOPS {
            match current.get("$ref").and_then(Value::as_str) {
                None => return Some(current),
                Some(reference) => match self.lookup(reference) {
                    Some(target) => current = target,
                    None => {
                        self.unresolved.set(self.unresolved.get() + 1);
                        return None;
                    }
                },
            }
        }
        self.unresolved.set(self.unresolved.get() + 1);
        None
    }

    /// An example value for `schema`: its own `example`/`examples`/`default`/`enum`/`const`, or
    /// one built from its type and properties (strings "string", numbers 0, booleans true, as
    /// openapi-sampler does).
    pub fn example_for_schema(&self, schema: &'a Value) -> Value {
        let mut stack = Vec::new();
        self.budget.set(MAX_EXAMPLE_NODES);
        self.example_inner(schema, 0, &mut stack)
    }

    fn example_inner(&self, schema: &'a Value, depth: usize, stack: &mut Vec<&'a str>) -> Value {
        if depth > MAX_EXAMPLE_DEPTH || self.budget.get() == 0 {
            return Value::Null;
        }
        self.budget.set(self.budget.get() - 1);
        let reference = schema.get("$ref").and_then(Value::as_str);
        if let Some(reference) = reference {
            if stack.contains(&reference) {
                // Recursive schema: stop here.
                return Value::Null;
            }
            stack.push(reference);
        }
        let value = match self.resolve(schema) {
            Some(resolved) => self.example_of_resolved(resolved, depth, stack),
            None => Value::Null,
        };
        if reference.is_some() {
            stack.pop();
        }
        value
    }

    fn example_of_resolved(
        &self,
        schema: &'a Value,
        depth: usize,
        stack: &mut Vec<&'a str>,
    ) -> Value {
        if let Some(example) = schema.get("example") {
            return example.clone();
        }
        if let Some(first) = schema
            .get("examples")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return first.clone();
        }
        for key in ["default", "const"] {
            if let Some(value) = schema.get(key) {
                return value.clone();
            }
        }
        if let Some(first) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return first.clone();
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            for part in parts {
                match self.example_inner(part, depth + 1, stack) {
                    Value::Object(fields) => merged.extend(fields),
                    other if parts.len() == 1 => return other,
                    _ => {}
                }
            }
            return Value::Object(merged);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(first) = schema
                .get(key)
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                return self.example_inner(first, depth + 1, stack);
            }
        }
        match schema_type(schema).as_deref() {
            Some("object") => self.example_object(schema, depth, stack),
            Some("array") => match schema.get("items") {
                Some(items) => {
                    let item = self.example_inner(items, depth + 1, stack);
                    Value::Array(if item.is_null() {
                        Vec::new()
                    } else {
                        vec![item]
                    })
                }
                None => Value::Array(Vec::new()),
            },
            Some("integer") | Some("number") => Value::from(0),
            Some("boolean") => Value::Bool(true),
            Some("null") => Value::Null,
            Some("string") => Value::String(string_example(schema)),
            _ => Value::String("string".to_string()),
        }
    }

    fn example_object(&self, schema: &'a Value, depth: usize, stack: &mut Vec<&'a str>) -> Value {
        let mut fields = Map::new();
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties.iter().take(MAX_EXAMPLE_PROPERTIES) {
                let resolved = self.resolve(property);
                if resolved
                    .and_then(|p| p.get("readOnly"))
                    .and_then(Value::as_bool)
                    == Some(true)
                {
                    continue;
                }
                let value = self.example_inner(property, depth + 1, stack);
                fields.insert(name.clone(), value);
            }
        }
        Value::Object(fields)
    }
}

/// `%XX` escapes decoded; `None` when there are none or they do not form UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The schema's type; 3.1 allows a list (`["string", "null"]`): the first non-null wins.
pub fn schema_type(schema: &Value) -> Option<String> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(t.clone()),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .or_else(|| types.first().and_then(Value::as_str))
            .map(str::to_string),
        _ if schema.get("properties").is_some() => Some("object".to_string()),
        _ if schema.get("items").is_some() => Some("array".to_string()),
        _ => None,
    }
}

fn string_example(schema: &Value) -> String {
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    match format {
        "date-time" => "2019-08-24T14:15:22Z",
        "date" => "2019-08-24",
        "email" => "user@example.com",
        "uuid" => "095be615-a8ad-4c33-8e9c-c7612fbf6c9f",
        "uri" | "url" => "http://example.com",
        "hostname" => "example.com",
        "ipv4" => "192.168.0.1",
        _ => "string",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_chains_and_stops_on_cycles() {
        let doc = json!({
            "components": {"schemas": {
                "Alias": {"$ref": "#/components/schemas/Node"},
                "Node": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}
                }},
                "Loop": {"$ref": "#/components/schemas/Loop"}
            }}
        });
        let resolver = Resolver::new(&doc);
        let example = resolver.example_for_schema(&json!({"$ref": "#/components/schemas/Alias"}));
        assert_eq!(
            example,
            json!({"name": "string", "children": [{"name": "string", "children": []}]})
        );
        assert_eq!(
            resolver.resolve(&json!({"$ref": "#/components/schemas/Loop"})),
            None
        );
        assert_eq!(resolver.resolve(&json!({"$ref": "other.yaml#/X"})), None);
        assert_eq!(resolver.unresolved.get(), 2);
    }

    #[test]
    fn percent_encoded_refs_resolve() {
        let doc = json!({"paths": {"/a/{id}": {"get": {"x": 1}}}});
        let resolver = Resolver::new(&doc);
        assert_eq!(
            resolver.resolve(&json!({"$ref": "#/paths/~1a~1%7Bid%7D/get"})),
            Some(&json!({"x": 1}))
        );
        assert_eq!(percent_decode("%7"), Some("%7".to_string()));
        assert_eq!(percent_decode("a%"), Some("a%".to_string()));
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn wide_deep_schemas_stay_small() {
        // Ten properties per level, each the next level: 10^6 leaves if fully expanded.
        let mut schemas = serde_json::Map::new();
        for level in 0..6 {
            let next = json!({"$ref": format!("#/components/schemas/L{}", level + 1)});
            let properties: serde_json::Map<String, Value> =
                (0..10).map(|i| (format!("p{i}"), next.clone())).collect();
            schemas.insert(
                format!("L{level}"),
                json!({"type": "object", "properties": properties}),
            );
        }
        schemas.insert("L6".into(), json!({"type": "string"}));
        let doc = json!({"components": {"schemas": schemas}});
        let resolver = Resolver::new(&doc);
        let example = resolver.example_for_schema(&json!({"$ref": "#/components/schemas/L0"}));
        assert!(
            example.to_string().len() < 20_000,
            "{}",
            example.to_string().len()
        );
    }
}
