//! The fake's subscriptions made or moved at a custom price (Stripe API
//! reference: "Create a subscription" and "Update a subscription",
//! `items[].price_data`): Stripe makes a one-off recurring price from the
//! item's `price_data` (`currency`, `product`, `recurring[interval]`,
//! `unit_amount`, all required), and a subscription created with
//! `collection_method=send_invoice` must say `days_until_due`. Tests read
//! what was made with [`FakeStripe::subscriptions_of`].

use serde_json::{Value, json};

use super::{
    FakeStripe, Reply, State, invalid_param, metadata_from, missing_param, new_subscription,
    no_such_param, now, ok, param, parse_int, random_id,
};

impl FakeStripe {
    /// Every subscription of `customer`, oldest first, in any status.
    pub fn subscriptions_of(&self, customer: &str) -> Vec<Value> {
        self.lock()
            .subscriptions
            .iter()
            .filter(|s| s["customer"] == customer)
            .cloned()
            .collect()
    }
}

/// `POST /v1/subscriptions`: one item, at a price id or a `price_data`.
pub(super) fn create_subscription(st: &mut State, params: &[(String, String)]) -> Reply {
    let Some(customer) = param(params, "customer") else {
        return missing_param("customer");
    };
    if st.live_customer(customer).is_none() {
        return no_such_param("customer", customer, "customer");
    }
    let collection = param(params, "collection_method").unwrap_or("charge_automatically");
    if !matches!(collection, "charge_automatically" | "send_invoice") {
        return invalid_param(
            "collection_method",
            format!(
                "Invalid collection_method: must be one of charge_automatically or send_invoice (got {collection})"
            ),
        );
    }
    let days_until_due = match parse_int(params, "days_until_due") {
        Ok(d) => d,
        Err(e) => return e,
    };
    if collection == "send_invoice" && days_until_due.is_none() {
        return missing_param("days_until_due");
    }
    let price = match item_price(params, "items[0]") {
        Ok(Some(p)) => p,
        Ok(None) => return missing_param("items[0][price]"),
        Err(e) => return e,
    };
    let Value::Object(metadata) = metadata_from(params, "metadata") else {
        unreachable!("metadata is an object")
    };
    let mut sub = new_subscription(customer, "", "active", None, metadata);
    set_item_price(&mut sub["items"]["data"][0], &price);
    sub["collection_method"] = json!(collection);
    sub["days_until_due"] = days_until_due.map_or(Value::Null, |d| json!(d));
    st.subscriptions.push(sub.clone());
    ok(sub)
}

/// The price item `prefix` (e.g. `items[0]`) asks for: a price id, or a
/// new price made from its `price_data`; `None` when it names neither.
pub(super) fn item_price(
    params: &[(String, String)],
    prefix: &str,
) -> Result<Option<Value>, Reply> {
    if let Some(id) = param(params, &format!("{prefix}[price]")) {
        let mut p = super::fixture("price");
        p["id"] = json!(id);
        return Ok(Some(p));
    }
    let data = format!("{prefix}[price_data]");
    if !params.iter().any(|(k, _)| k.starts_with(&data)) {
        return Ok(None);
    }
    let field = |name: &str| {
        let key = format!("{data}{name}");
        param(params, &key)
            .map(str::to_owned)
            .ok_or_else(|| missing_param(&key))
    };
    let currency = field("[currency]")?;
    let product = field("[product]")?;
    let interval = field("[recurring][interval]")?;
    if !matches!(interval.as_str(), "day" | "week" | "month" | "year") {
        return Err(invalid_param(
            &format!("{data}[recurring][interval]"),
            format!("Invalid interval: must be one of day, week, month, or year (got {interval})"),
        ));
    }
    let amount_key = format!("{data}[unit_amount]");
    let unit_amount = match parse_int(params, &amount_key)? {
        Some(a) if a >= 0 => a,
        Some(_) => {
            return Err(invalid_param(
                &amount_key,
                "This value must be greater than or equal to 0.".into(),
            ));
        }
        None => return Err(missing_param(&amount_key)),
    };
    let mut p = super::fixture("price");
    p["id"] = json!(random_id("price_", 24));
    p["object"] = json!("price");
    p["active"] = json!(false);
    p["currency"] = json!(currency);
    p["product"] = json!(product);
    p["unit_amount"] = json!(unit_amount);
    p["unit_amount_decimal"] = json!(unit_amount.to_string());
    p["type"] = json!("recurring");
    p["recurring"]["interval"] = json!(interval);
    p["recurring"]["interval_count"] = json!(1);
    p["transform_quantity"] = Value::Null;
    p["custom_unit_amount"] = Value::Null;
    p["lookup_key"] = Value::Null;
    p["nickname"] = Value::Null;
    p["created"] = json!(now());
    p["livemode"] = json!(false);
    Ok(Some(p))
}

/// Puts `price` on subscription item `item` (and its legacy `plan`, which
/// Stripe keeps in step with the price).
pub(super) fn set_item_price(item: &mut Value, price: &Value) {
    item["price"] = price.clone();
    item["plan"]["id"] = price["id"].clone();
    item["plan"]["amount"] = price["unit_amount"].clone();
    item["plan"]["currency"] = price["currency"].clone();
    item["plan"]["interval"] = price["recurring"]["interval"].clone();
    item["plan"]["product"] = price["product"].clone();
}
