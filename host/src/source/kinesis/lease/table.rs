//! The lease table's calls, each one DynamoDB request. Every write that depends on who holds
//! a lease is conditional on `leaseCounter` (and, for the holder's own writes, `leaseOwner`),
//! as KCL's are: a write that lost a race is answered `false`/`None`, never applied.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};

use super::LeaseError;
use super::item::{self, Lease};

/// A lease table.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: Client,
    name: String,
}

/// Whether an error is DynamoDB refusing a conditional write.
fn condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

impl LeaseTable {
    /// The table `name` through `client`.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        LeaseTable {
            client,
            name: name.into(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Count a call (`sluice_lease_calls_total`).
    fn count(&self, call: &'static str) {
        crate::telemetry::meters::lease_call(&self.name, call);
    }

    fn err<E, R>(&self, call: &'static str, e: &SdkError<E, R>) -> LeaseError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        LeaseError::api(call, &self.name, e)
    }

    /// Create the table (hash key `leaseKey`, on-demand) when it does not exist, and wait until
    /// it is active.
    pub async fn ensure(&self) -> Result<(), LeaseError> {
        self.count("DescribeTable");
        match self.client.describe_table().table_name(&self.name).send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                let key = KeySchemaElement::builder()
                    .attribute_name(item::KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| LeaseError::Build(e.to_string()))?;
                let attribute = AttributeDefinition::builder()
                    .attribute_name(item::KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| LeaseError::Build(e.to_string()))?;
                self.count("CreateTable");
                let created = self
                    .client
                    .create_table()
                    .table_name(&self.name)
                    .key_schema(key)
                    .attribute_definitions(attribute)
                    .billing_mode(BillingMode::PayPerRequest)
                    .send()
                    .await;
                match created {
                    Ok(_) => tracing::info!(table = %self.name, "Created the lease table."),
                    // Another instance created it first.
                    Err(e) if e.code() == Some("ResourceInUseException") => {}
                    Err(e) => return Err(self.err("CreateTable", &e)),
                }
            }
            Err(e) => return Err(self.err("DescribeTable", &e)),
        }
        for _ in 0..600 {
            self.count("DescribeTable");
            let described = self
                .client
                .describe_table()
                .table_name(&self.name)
                .send()
                .await
                .map_err(|e| self.err("DescribeTable", &e))?;
            let status = described.table.and_then(|t| t.table_status);
            if matches!(status, Some(TableStatus::Active) | None) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(LeaseError::NotActive(self.name.clone()))
    }

    /// Every lease, read consistently.
    pub async fn scan(&self) -> Result<Vec<Lease>, LeaseError> {
        let mut leases = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            self.count("Scan");
            let out = self
                .client
                .scan()
                .table_name(&self.name)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Scan", &e))?;
            for it in out.items.unwrap_or_default() {
                match Lease::from_item(&it) {
                    Ok(lease) => leases.push(lease),
                    Err(message) => {
                        tracing::warn!(table = %self.name, %message, "Skipping a lease item sluice cannot read.")
                    }
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(leases),
            }
        }
    }

    /// One lease, read consistently.
    pub async fn get(&self, key: &str) -> Result<Option<Lease>, LeaseError> {
        self.count("GetItem");
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(item::KEY, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem", &e))?;
        out.item
            .map(|it| Lease::from_item(&it).map_err(|m| LeaseError::Damaged(key.to_owned(), m)))
            .transpose()
    }

    /// Put a new lease unless one with its key exists; whether it was put.
    pub async fn create(&self, lease: &Lease) -> Result<bool, LeaseError> {
        self.count("PutItem");
        let put = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(lease.to_item()))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", item::KEY)
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(self.err("PutItem", &e)),
        }
    }

    /// Send a conditional update: whether it was applied (`false`: the condition failed, so
    /// nothing was written).
    async fn apply(&self, call: &'static str, update: UpdateItemFluentBuilder) -> Result<bool, LeaseError> {
        self.count("UpdateItem");
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(self.err(call, &e)),
        }
    }

    /// An update of a lease `me` holds at `counter`, applied only while it does: `expression`
    /// (which sets `#c` to `:next`, the counter's next value) and the names and values it uses
    /// besides `#o`, `#c`, `:me`, `:next` and `:counter` are the caller's.
    fn held_update(&self, key: &str, me: &str, counter: u64, expression: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.name)
            .key(item::KEY, s(key))
            .update_expression(expression)
            .condition_expression("#c = :counter AND #o = :me")
            .expression_attribute_names("#o", item::OWNER)
            .expression_attribute_names("#c", item::COUNTER)
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":next", n(counter + 1))
            .expression_attribute_values(":counter", n(counter))
    }

    /// Take `lease` (as last read) for `me`: conditional on its counter not having moved
    /// since. The new counter, or `None` when another worker got there first.
    pub async fn take(&self, lease: &Lease, me: &str) -> Result<Option<u64>, LeaseError> {
        let next = lease.counter + 1;
        let switched = u64::from(lease.owner.as_deref() != Some(me));
        let update = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(item::KEY, s(&lease.key))
            .update_expression("SET #o = :me, #c = :next, #sw = if_not_exists(#sw, :zero) + :switched")
            .condition_expression("#c = :counter")
            .expression_attribute_names("#o", item::OWNER)
            .expression_attribute_names("#c", item::COUNTER)
            .expression_attribute_names("#sw", item::OWNER_SWITCHES)
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":counter", n(lease.counter))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":switched", n(switched));
        Ok(self.apply("UpdateItem (take)", update).await?.then_some(next))
    }

    /// Renew a lease `me` holds at `counter`: the new counter, or `None` when it is no longer
    /// ours.
    pub async fn renew(&self, key: &str, me: &str, counter: u64) -> Result<Option<u64>, LeaseError> {
        let update = self.held_update(key, me, counter, "SET #c = :next");
        Ok(self.apply("UpdateItem (renew)", update).await?.then_some(counter + 1))
    }

    /// Record a shard's checkpoint (KCL's attributes and sluice's checkpoint of the shard's
    /// pipeline, in one write) on a lease `me` holds at `counter`: the new counter, or `None`
    /// when it is no longer ours and nothing was written.
    pub async fn checkpoint(
        &self,
        key: &str,
        me: &str,
        counter: u64,
        (checkpoint, sub_sequence): (&str, u64),
        sluice: &[u8],
    ) -> Result<Option<u64>, LeaseError> {
        let update = self
            .held_update(
                key,
                me,
                counter,
                "SET #c = :next, #cp = :cp, #sub = :sub, #sw = :zero, #sl = :sluice",
            )
            .expression_attribute_names("#cp", item::CHECKPOINT)
            .expression_attribute_names("#sub", item::SUB_SEQUENCE)
            .expression_attribute_names("#sw", item::OWNER_SWITCHES)
            .expression_attribute_names("#sl", item::SLUICE)
            .expression_attribute_values(":cp", s(checkpoint))
            .expression_attribute_values(":sub", n(sub_sequence))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":sluice", AttributeValue::B(sluice.to_vec().into()));
        Ok(self
            .apply("UpdateItem (checkpoint)", update)
            .await?
            .then_some(counter + 1))
    }

    /// Delete an ended lease, as it was at `counter` (KCL's lease cleanup); whether it was
    /// deleted (`false`: it changed, or another worker deleted it first).
    pub async fn delete_ended(&self, key: &str, counter: u64) -> Result<bool, LeaseError> {
        self.count("DeleteItem");
        let delete = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key(item::KEY, s(key))
            .condition_expression("#cp = :end AND #c = :c")
            .expression_attribute_names("#cp", item::CHECKPOINT)
            .expression_attribute_names("#c", item::COUNTER)
            .expression_attribute_values(":end", s(item::SHARD_END))
            .expression_attribute_values(":c", n(counter))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(self.err("DeleteItem", &e)),
        }
    }

    /// Give up a lease `me` holds at `counter` (KCL's evict: no owner), so another worker
    /// takes it at once rather than after the failover time; whether it was ours to give.
    pub async fn release(&self, key: &str, me: &str, counter: u64) -> Result<bool, LeaseError> {
        let update = self.held_update(key, me, counter, "SET #c = :next REMOVE #o");
        self.apply("UpdateItem (release)", update).await
    }
}
