/* daemon/settings.h — daemon configuration: defaults, YAML file, command-line overrides.
 *
 * Precedence: built-in defaults < --config FILE < command-line flags. Every
 * key is documented in docs/configuration.md with its default. Errors name
 * the file, line and key. struct fs_config owns all its strings.
 */
#ifndef FORESHOCK_SETTINGS_H
#define FORESHOCK_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "alert/notify.h"
#include "store/rwexport.h"
#include "util/labels.h"

struct fs_config {
	char *listen;               /* "127.0.0.1:9790" */
	char *data_dir;             /* "./var" */
	char *log_level;            /* "info" */
	char *model_file;           /* NULL = search models/default.yml, then the installed copy, then built-in */
	char *models_dir;           /* service models (kind: service); NULL = ./models if it exists */
	char *external_url;         /* base URL for links in alert annotations; NULL = http://<listen> */
	unsigned http_threads;      /* deprecated http.threads: ignored, warned; 0 = not set */
	unsigned max_inflight_writes; /* 8: ingest requests at once; beyond, they queue */
	unsigned max_queued_writes;   /* 1024: ingest requests waiting at once; beyond, 503 */
	int64_t queue_timeout_ms;     /* 2 s: longest wait in that queue, then 503 */
	int64_t max_body;           /* 16 MiB, applies after decompression too */
	/* request-side protections (http.h says what each does) */
	char *health_listen;        /* http.health_listen: NULL = none */
	unsigned max_connections;   /* http.max_connections: 1024 */
	unsigned max_connections_per_client; /* 0 = half of max_connections */
	unsigned max_inflight_reads; /* 8 */
	unsigned max_queued_reads;   /* 64 */
	int64_t idle_timeout_ms;     /* 60 s */
	int64_t header_timeout_ms;   /* 10 s */
	int64_t body_timeout_ms;     /* 60 s */
	int64_t max_response;        /* 64 MiB */
	char **allowed_hosts;        /* NULL-terminated, owned; NULL = none extra */
	char *write_token_file;      /* auth.write_token_file */
	char *read_token_file;       /* auth.read_token_file */
	char *tls_cert_file;         /* tls.cert_file */
	char *tls_key_file;          /* tls.key_file */
	int64_t checkpoint_interval_ms; /* 30 s: changed series' state written this often;
	                                 * 0 = only at shutdown */
	size_t checkpoint_max_series;   /* 50000: at most this many series per interval */
	size_t metrics_series_limit; /* metrics.series_limit: 10000; 0 = no per-series gauges */
	struct engine_config engine;
	char *alertname;            /* owned copy behind engine.alertname */
	char *replay_file;          /* --replay: line protocol to push through the HTTP API after start */
	double replay_speed;        /* event-time seconds per wall second; 0 = as fast as possible */
	char *replay_precision;     /* precision of the replay file, "ns" */
	int replay_now;             /* --replay-now: shift the file so its last sample is at start time */
	struct rwexport_config export; /* `export:` section (rwexport.h); url NULL = off */
	struct notify_config notify; /* `notify:` section (notify.h); no targets by default */
	struct labels external_labels; /* external_labels: + --shard: the daemon's identity in a
	                                * fleet, sorted, owned; on alerts sent out and /metrics */
};

void config_defaults(struct fs_config *c);
/* Overlay a YAML file onto c. Returns 0, or -1 with "FILE:LINE: reason". */
int config_load_file(struct fs_config *c, const char *path, char *err, size_t errlen);
struct http_config;
/* Fill hc from c (hc borrows c's strings: c must outlive it). */
void config_http(const struct fs_config *c, struct http_config *hc);
/* Replace an owned string field. */
int config_set_str(char **field, const char *value);
void config_free(struct fs_config *c);
/* Set external label name to value, replacing a label of that name (as
 * --shard does for "shard"). Names follow Prometheus' label rules and may not
 * start with "__"; values are 1 to 1024 bytes; at most CONFIG_MAX_EXTERNAL_LABELS
 * labels. Returns 0, or -1 with the reason in err. */
#define CONFIG_MAX_EXTERNAL_LABELS 16
int config_set_external_label(struct fs_config *c, const char *name, const char *value, char *err,
                              size_t errlen);

#endif
