//! `jetlog object …`: object-store buckets through async-nats' `object_store` API, with the
//! `nats` CLI's command and argument names (`add`, `put`, `get`, `ls`, `info`, `rm`/`del`).
//!
//! Objects stream in both directions: `put` hands the file (or stdin) to the client, which
//! sends it in 128 KiB chunks, each acknowledged before the next; `get` writes chunks as they
//! arrive and the client checks the SHA-256 digest at the end. Neither holds an object in
//! memory, so objects larger than RAM work.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::object_store::{self, InfoErrorKind, ObjectMetadata};
use async_nats::jetstream::Context;
use clap::{Args, Subcommand};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::buckets::{self, check_bucket_name, BucketKind};
use super::connect::{self, CommonArgs};
use super::kv_config::SharedBucketArgs;
use super::object_view;
use super::output;
use super::progress::{Counted, Progress};
use super::pubsub::parse_headers;
use super::stream::confirm;
use super::units::{parse_limit_duration, parse_size};

/// How much of an object `get` reads at a time before writing it out.
const GET_BUFFER_BYTES: usize = 64 * 1024;
/// The suffix of the file `get` writes into before the digest is checked: a failed or
/// interrupted download never takes the name of the object it was meant to be.
const PARTIAL_SUFFIX: &str = ".partial";
/// What `get --output` takes to mean standard output.
const STDOUT_PATH: &str = "-";

#[derive(Debug, Args)]
pub struct ObjectArgs {
    #[command(subcommand)]
    action: ObjectAction,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum ObjectAction {
    /// Create a bucket.
    Add {
        /// Bucket name.
        bucket: String,
        #[command(flatten)]
        config: BucketArgs,
    },
    /// Store a file as an object (from stdin when FILE is omitted, with --name).
    Put {
        bucket: String,
        /// The file to store.
        file: Option<PathBuf>,
        /// The object's name (default: FILE as given, without `./`).
        #[arg(long)]
        name: Option<String>,
        /// Free text stored with the object.
        #[arg(long)]
        description: Option<String>,
        /// A header stored with the object, as NAME:VALUE; may be repeated.
        #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// Replace an existing object without asking.
        #[arg(short = 'f', long)]
        force: bool,
        /// No progress line on a terminal.
        #[arg(long)]
        no_progress: bool,
        /// Bytes per chunk (default 128 KiB).
        #[arg(long, value_parser = parse_size)]
        chunk_size: Option<i64>,
    },
    /// Fetch an object into a file (or stdout with `-O -`), checking its digest.
    Get {
        bucket: String,
        /// The object's name.
        name: String,
        /// Where to write it (default: the last part of the name, in this directory).
        #[arg(short = 'O', long)]
        output: Option<String>,
        /// Overwrite an existing file without asking.
        #[arg(short = 'f', long)]
        force: bool,
        /// No progress line on a terminal.
        #[arg(long)]
        no_progress: bool,
    },
    /// List buckets, or the objects in BUCKET.
    #[command(visible_alias = "list")]
    Ls {
        bucket: Option<String>,
        /// Only the names, one per line.
        #[arg(short = 'n', long)]
        names: bool,
    },
    /// Show a bucket's settings and state, or one object's metadata.
    Info {
        bucket: String,
        /// The object's name.
        name: Option<String>,
    },
    /// Print objects as they are stored or deleted, from now on.
    Watch {
        bucket: String,
        /// Exit after this many changes (default: run until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Delete an object, or the whole bucket without NAME.
    #[command(visible_alias = "del")]
    Rm {
        bucket: String,
        /// The object's name.
        name: Option<String>,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// The flags of `object add`, named as in `nats object add`.
#[derive(Debug, Args)]
struct BucketArgs {
    /// How long objects live, e.g. 24h (0 = forever).
    #[arg(long, value_parser = parse_limit_duration)]
    ttl: Option<Duration>,
    #[command(flatten)]
    shared: SharedBucketArgs,
}

impl ObjectAction {
    fn bucket(&self) -> Option<&str> {
        match self {
            Self::Add { bucket, .. }
            | Self::Put { bucket, .. }
            | Self::Get { bucket, .. }
            | Self::Info { bucket, .. }
            | Self::Watch { bucket, .. }
            | Self::Rm { bucket, .. } => Some(bucket),
            Self::Ls { bucket, .. } => bucket.as_deref(),
        }
    }
}

/// `jetlog object …`.
pub async fn run(args: ObjectArgs) -> Result<()> {
    let common = &args.common;
    if let Some(bucket) = args.action.bucket() {
        check_bucket_name(bucket)?;
    }
    let js = connect::connect_jetstream(common).await?;
    match args.action {
        ObjectAction::Add { bucket, config } => add(&js, common, &bucket, &config).await,
        ObjectAction::Put {
            bucket,
            file,
            name,
            description,
            headers,
            force,
            no_progress,
            chunk_size,
        } => {
            let chunk_size = chunk_size
                .map(|n| usize::try_from(n).ok().filter(|&n| n > 0))
                .map(|n| n.ok_or_else(|| anyhow!("--chunk-size must be above 0")))
                .transpose()?;
            let name = match (name, &file) {
                (Some(name), _) => name,
                (None, Some(file)) => object_name_for(file),
                (None, None) => bail!("--name is required when the object comes from stdin"),
            };
            let meta = ObjectMetadata {
                name,
                description,
                headers: parse_headers(&headers)?,
                chunk_size,
                ..Default::default()
            };
            let file = file.as_deref();
            put(&js, common, &bucket, file, meta, (force, !no_progress)).await
        }
        ObjectAction::Get {
            bucket,
            name,
            output,
            force,
            no_progress,
        } => get(&js, common, (&bucket, &name), output, force, !no_progress).await,
        ObjectAction::Ls { bucket, names } => match bucket {
            Some(bucket) => {
                let store = open(&js, &bucket).await?;
                let list = store
                    .list()
                    .await
                    .with_context(|| format!("cannot list the objects in {bucket}"))?;
                let objects = tokio::time::timeout(common.timeout, list_all(list))
                    .await
                    .map_err(|_| anyhow!("the object list did not arrive within the timeout"))??;
                object_view::show_objects(&objects, names, common.json)
            }
            None => {
                let infos = buckets::list_infos(&js, BucketKind::Object).await?;
                object_view::show_buckets(&infos, names, common.json)
            }
        },
        ObjectAction::Watch { bucket, count } => {
            let store = open(&js, &bucket).await?;
            let mut changes = store
                .watch()
                .await
                .with_context(|| format!("cannot watch object store bucket {bucket}"))?;
            // The watch exists once the call returns; scripts wait for this line.
            eprintln!("listening on {bucket}");
            let mut shown = 0u64;
            while count.is_none_or(|count| shown < count) {
                let Some(change) = futures::StreamExt::next(&mut changes).await else {
                    bail!("the watch ended: the connection to the server was closed");
                };
                let info = change.with_context(|| format!("watching {bucket}"))?;
                if common.json {
                    output::json_line(&info)?;
                } else {
                    let what = match info.deleted {
                        true => "DEL".to_string(),
                        false => format!("PUT {} bytes", info.size),
                    };
                    output::line(format!("{bucket} > {} {what}", info.name))?;
                }
                shown += 1;
            }
            Ok(())
        }
        ObjectAction::Info { bucket, name } => match name {
            Some(name) => {
                let store = open(&js, &bucket).await?;
                let info = object_info(&store, &bucket, &name).await?;
                object_view::show_object(&info, common.json)
            }
            None => {
                let info = buckets::info_json(&js, BucketKind::Object, &bucket).await?;
                object_view::show_bucket(info, common.json)
            }
        },
        ObjectAction::Rm {
            bucket,
            name,
            force,
        } => match name {
            Some(name) => remove_object(&js, common, &bucket, &name, force).await,
            None => remove_bucket(&js, common, &bucket, force).await,
        },
    }
}

/// Binds a bucket, with an error that says which one is missing.
async fn open(js: &Context, bucket: &str) -> Result<object_store::ObjectStore> {
    js.get_object_store(bucket)
        .await
        .map_err(|err| anyhow!("object store bucket {bucket}: {err}"))
}

/// One object's metadata; a deleted object counts as not found.
async fn object_info(
    store: &object_store::ObjectStore,
    bucket: &str,
    name: &str,
) -> Result<object_store::ObjectInfo> {
    match store.info(name).await {
        Ok(info) if !info.deleted => Ok(info),
        Ok(_) => bail!("{bucket} > {name} was deleted"),
        Err(err) if err.kind() == InfoErrorKind::NotFound => bail!("{bucket} > {name} not found"),
        Err(err) => Err(anyhow!("cannot read {bucket} > {name}: {err}")),
    }
}

async fn list_all(mut list: object_store::List) -> Result<Vec<object_store::ObjectInfo>> {
    use futures::TryStreamExt;
    let mut objects = Vec::new();
    while let Some(info) = list.try_next().await? {
        objects.push(info);
    }
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(objects)
}

async fn add(js: &Context, common: &CommonArgs, bucket: &str, args: &BucketArgs) -> Result<()> {
    let config = object_store::Config {
        bucket: bucket.to_string(),
        description: args.shared.description.clone(),
        max_age: args.ttl.unwrap_or(Duration::ZERO),
        max_bytes: args.shared.max_bucket_size.unwrap_or(-1),
        storage: args.shared.storage.into(),
        num_replicas: args.shared.replicas,
        compression: args.shared.compress,
        placement: args.shared.placement(),
    };
    js.create_object_store(config)
        .await
        .map_err(|err| anyhow!("cannot create object store bucket {bucket}: {err}"))?;
    if !common.json {
        output::line(format!("object store bucket {bucket} created"))?;
    }
    let info = buckets::info_json(js, BucketKind::Object, bucket).await?;
    object_view::show_bucket(info, common.json)
}

async fn put(
    js: &Context,
    common: &CommonArgs,
    bucket: &str,
    file: Option<&Path>,
    meta: ObjectMetadata,
    (force, show_progress): (bool, bool),
) -> Result<()> {
    let store = open(js, bucket).await?;
    let name = meta.name.clone();
    if let Ok(existing) = store.info(&name).await {
        if !existing.deleted {
            confirm(&format!("replace {bucket} > {name}"), force)?;
        }
    }
    let source: Box<dyn AsyncRead + Unpin> = match file {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    // From stdin the size is unknown: the line shows the bytes sent so far.
    let total = match file {
        Some(path) => tokio::fs::metadata(path).await.map_or(0, |m| m.len()),
        None => 0,
    };
    let progress = Progress::new();
    let mut source = Counted::new(source, progress.clone());
    // Each chunk's publish and ack is bounded by --timeout inside the client.
    let upload = store.put(meta, &mut source);
    let label = format!("put {bucket} > {name} (bytes)");
    let stored = match show_progress {
        true => tokio::select! {
            done = upload => done,
            never = progress.draw(&label, total) => match never {},
        },
        false => upload.await,
    };
    if show_progress {
        Progress::clear();
    }
    let info = stored.map_err(|err| anyhow!("cannot put {bucket} > {name}: {err}"))?;
    object_view::show_object(&info, common.json)
}

/// The name a file is stored under when `put` is not given `--name`: the path as typed
/// without `.` steps, so `./backup.tar` and `backup.tar` name the same object.
fn object_name_for(file: &Path) -> String {
    let cleaned: PathBuf = file
        .components()
        .filter(|part| !matches!(part, Component::CurDir))
        .collect();
    cleaned.to_string_lossy().into_owned()
}

/// The file `get` writes when no `--output` is given: the object name's last part, so a name
/// such as `../../etc/passwd` can never write outside the current directory.
fn default_output(name: &str) -> Result<PathBuf> {
    Path::new(name)
        .file_name()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("cannot make a file name from {name:?}: give --output"))
}

async fn get(
    js: &Context,
    common: &CommonArgs,
    (bucket, name): (&str, &str),
    output: Option<String>,
    force: bool,
    show_progress: bool,
) -> Result<()> {
    let store = open(js, bucket).await?;
    // Fail on a missing object before a file is created or anyone is asked anything.
    let size = object_info(&store, bucket, name).await?.size as u64;
    let object = store
        .get(name)
        .await
        .map_err(|err| anyhow!("cannot get {bucket} > {name}: {err}"))?;
    let progress = Progress::new();
    let mut object = Counted::new(object, progress.clone());
    let label = format!("get {bucket} > {name} (bytes)");
    let drawn = async {
        match show_progress {
            true => progress.draw(&label, size).await,
            false => std::future::pending().await,
        }
    };
    if output.as_deref() == Some(STDOUT_PATH) {
        let mut stdout = tokio::io::stdout();
        tokio::select! {
            done = copy_with_idle_timeout(&mut object, &mut stdout, common.timeout) => done?,
            never = drawn => match never {},
        };
        if show_progress {
            Progress::clear();
        }
        return Ok(());
    }
    let target = match output {
        Some(path) => PathBuf::from(path),
        None => default_output(name)?,
    };
    if target.exists() {
        confirm(&format!("overwrite {}", target.display()), force)?;
    }
    let mut partial = target.clone().into_os_string();
    partial.push(PARTIAL_SUFFIX);
    let partial = PathBuf::from(partial);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let copied = tokio::select! {
        done = copy_with_idle_timeout(&mut object, &mut file, common.timeout) => done,
        never = drawn => match never {},
    };
    if show_progress {
        Progress::clear();
    }
    let finished = match copied {
        Ok(bytes) => file.sync_all().await.map(|()| bytes).map_err(Into::into),
        Err(err) => Err(err),
    };
    let bytes = match finished {
        Ok(bytes) => bytes,
        Err(err) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(err.context(format!("{bucket} > {name}")));
        }
    };
    tokio::fs::rename(&partial, &target)
        .await
        .with_context(|| format!("cannot rename {} into place", partial.display()))?;
    object_view::show_fetched(bucket, name, &target, bytes, common.json)
}

/// Copies until the end of the object, failing when no bytes arrive for `idle`: a large
/// object may take long as a whole, but a stalled transfer is reported, never waited on.
async fn copy_with_idle_timeout(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    idle: Duration,
) -> Result<u64> {
    let mut buffer = vec![0u8; GET_BUFFER_BYTES];
    let mut total = 0u64;
    loop {
        let read = tokio::time::timeout(idle, from.read(&mut buffer))
            .await
            .map_err(|_| anyhow!("no data arrived for the object within the timeout"))?
            .context("reading the object")?;
        if read == 0 {
            break;
        }
        to.write_all(&buffer[..read])
            .await
            .context("writing the object")?;
        total += read as u64;
    }
    to.flush().await.context("writing the object")?;
    Ok(total)
}

async fn remove_object(
    js: &Context,
    common: &CommonArgs,
    bucket: &str,
    name: &str,
    force: bool,
) -> Result<()> {
    let store = open(js, bucket).await?;
    let info = object_info(&store, bucket, name).await?;
    confirm(
        &format!("delete {bucket} > {name} ({} bytes)", info.size),
        force,
    )?;
    store
        .delete(name)
        .await
        .map_err(|err| anyhow!("cannot delete {bucket} > {name}: {err}"))?;
    object_view::show_removed(bucket, Some(name), common.json)
}

async fn remove_bucket(js: &Context, common: &CommonArgs, bucket: &str, force: bool) -> Result<()> {
    // Look first, so a missing bucket is reported before anyone is asked about it.
    buckets::info_json(js, BucketKind::Object, bucket).await?;
    confirm(
        &format!("delete object store bucket {bucket} and all its objects"),
        force,
    )?;
    js.delete_object_store(bucket)
        .await
        .map_err(|err| anyhow!("cannot delete object store bucket {bucket}: {err}"))?;
    object_view::show_removed(bucket, None, common.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_from_paths_drop_dot_steps() {
        assert_eq!(object_name_for(Path::new("./backup.tar")), "backup.tar");
        assert_eq!(object_name_for(Path::new("a/./b.txt")), "a/b.txt");
        assert_eq!(object_name_for(Path::new("/tmp/x.bin")), "/tmp/x.bin");
    }

    #[test]
    fn default_output_never_leaves_the_current_directory() {
        assert_eq!(
            default_output("reports/2024/q1.pdf").ok(),
            Some(PathBuf::from("q1.pdf"))
        );
        assert_eq!(
            default_output("../../etc/passwd").ok(),
            Some(PathBuf::from("passwd"))
        );
        assert!(default_output("..").is_err());
        assert!(default_output("/").is_err());
    }
}
