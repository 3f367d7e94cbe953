/* daemon/main.c — foreshockd: command line, start-up and shutdown order,
 * signals, housekeeping (checkpoints, retention) and the demo replayer.
 *
 * Start-up: config -> log level -> model and service models -> data dir ->
 * store -> engine -> HTTP (writes and /readyz 503 until ready) -> services
 * bound -> restore checkpoint -> notifier -> ready -> replay. Shutdown
 * (SIGTERM/SIGINT): stop the replay -> stop the notifier -> stop HTTP (no new
 * batches) -> checkpoint detector state -> close store. SIGHUP reloads the
 * detector model; a bad model is rejected and the old one kept.
 */
#include "config.h" /* autoconf */

#include <curl/curl.h>
#include <gsl/gsl_errno.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "detect/detector.h"
#include "engine/engine.h"
#include "http/api.h"
#include "http/server.h"
#include "ingest/line.h"
#include "util/log.h"
#include "alert/notify.h"
#include "util/selfstats.h"
#include "service/service.h"
#include "daemon/settings.h"
#include "store/store.h"
#include "store/datadir.h"
#include "store/rwexport.h"
#include "daemon/outputs.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: foreshockd [OPTIONS]\n"
	        "\n"
	        "Streaming anomaly detection and outage prediction for metrics.\n"
	        "\n"
	        "options:\n"
	        "  -c, --config FILE        YAML configuration file (see foreshockd(8))\n"
	        "  -l, --listen ADDR:PORT   HTTP listen address (default 127.0.0.1:9790; :0 picks a port)\n"
	        "  -d, --data-dir DIR       directory of the SQLite store (default ./var)\n"
	        "  -m, --model FILE         detector model (default models/default.yml)\n"
	        "      --models-dir DIR     service models, files with kind: service (default ./models)\n"
	        "      --log-level LEVEL    debug, info, warn, error (default info)\n"
	        "      --max-series N       cardinality limit (default 1000000)\n"
	        "      --shard NAME         this daemon's shard: the external label shard=NAME,\n"
	        "                           on alerts sent out and in /metrics (foreshock_shard_info)\n"
	        "      --replay FILE        push a line-protocol file through the HTTP API after start\n"
	        "      --replay-speed X     event-time seconds per wall second (default 360; 0 = max)\n"
	        "      --replay-precision P precision of the replay file: ns, us, ms, s (default ns)\n"
	        "      --replay-now         shift the replayed timestamps so the file ends at start time\n"
	        "      --export-url URL     remote_write foreshock's outputs to this TSDB (export.url)\n"
	        "      --health-listen ADDR another address serving only /healthz and /readyz\n"
	        "      --write-token-file F bearer tokens that may write (one a line)\n"
	        "      --read-token-file F  bearer tokens that may read (one a line)\n"
	        "      --tls-cert-file F    PEM certificate: serve HTTPS (with --tls-key-file)\n"
	        "      --tls-key-file F     PEM private key of that certificate\n"
	        "      --check-config       validate the configuration and model, then exit\n"
	        "  -h, --help               this help\n"
	        "  -V, --version            print the version\n"
	        "\n"
	        "Signals: SIGTERM/SIGINT shut down cleanly (state is checkpointed), SIGHUP reloads the model.\n");
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return -1;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Find the default model: ./models/default.yml, then the installed copy. */
static struct model *load_model(const char *path, char *err, size_t errlen, char **used)
{
	if (path) {
		*used = strdup(path);
		return model_load_file(path, err, errlen);
	}
	static const char *const candidates[] = { "models/default.yml",
		                                   FORESHOCK_DATADIR "/default.yml", NULL };
	for (int i = 0; candidates[i]; i++) {
		if (access(candidates[i], R_OK) == 0) {
			*used = strdup(candidates[i]);
			return model_load_file(candidates[i], err, errlen);
		}
	}
	*used = strdup("(built-in default)");
	return model_builtin_default();
}

/* Service models: the configured directory, else ./models when it exists.
 * Returns 0 with *out set (NULL when there is nothing to load), or -1 on an
 * invalid model (err says file, line and reason). */
static int load_services(const char *dir, struct services **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!dir) {
		if (access("models", R_OK | X_OK) != 0)
			return 0;
		dir = "models";
	}
	*out = services_load_dir(dir, err, errlen);
	return *out ? 0 : -1;
}

/* --- rejected samples in the log: at most one line per reason every
 * REJECT_LOG_MS, with the count since the last line (selfstats has totals) */
#define REJECT_LOG_MS 10000
struct reject_log {
	uint64_t seen[REJ__COUNT];
	int64_t last_ms;
};

static void reject_log_init(struct reject_log *l, struct selfstats *st)
{
	for (int r = 0; r < REJ__COUNT; r++)
		l->seen[r] = atomic_load_explicit(&st->samples_rejected[r], memory_order_relaxed);
	l->last_ms = 0;
}

static void reject_log_tick(struct reject_log *l, struct selfstats *st, int64_t now_ms)
{
	if (now_ms - l->last_ms < REJECT_LOG_MS)
		return;
	for (int r = 0; r < REJ__COUNT; r++) {
		uint64_t v = atomic_load_explicit(&st->samples_rejected[r], memory_order_relaxed);
		if (v == l->seen[r])
			continue;
		const char *hint = r == REJ_OUT_OF_ORDER || r == REJ_DUPLICATE ?
		                   " hint=\"older than or as old as the series' last sample: data sent "
		                   "twice? (a replay again: --replay-now or a fresh --data-dir)\"" :
		                   r == REJ_CARDINALITY ? " hint=\"limits.max_series reached\"" :
		                   r == REJ_MEMORY ? " hint=\"limits.max_memory reached\"" : "";
		log_msg(LOG_WARN, "event=samples_rejected reason=%s count=%llu total=%llu%s",
		        selfstats_reject_name((enum reject_reason)r),
		        (unsigned long long)(v - l->seen[r]), (unsigned long long)v, hint);
		l->seen[r] = v;
		l->last_ms = now_ms;
	}
}

/* --- demo/replay: pushes a recorded line-protocol file through our own HTTP
 * API, paced by event time, exactly as a live sender would. --- */
struct replayer {
	pthread_t tid;
	char *file;
	double speed;
	char precision[8];
	unsigned short port;
	int to_now;                /* shift timestamps so the file's last one is the start time */
	int tls;                 /* the daemon serves HTTPS: talk TLS to ourselves */
	const char *token;       /* the server's replay token (event time; valid for writes) */
	atomic_int stop;
	int started;
};

static int64_t line_time_ns(const char *line, size_t len, int64_t mult)
{
	/* the timestamp is the last space-separated token */
	size_t i = len;
	while (i > 0 && line[i - 1] != ' ')
		i--;
	char tmp[32];
	size_t n = len - i;
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, line + i, n);
	tmp[n] = '\0';
	char *end;
	long long v = strtoll(tmp, &end, 10);
	if (*end)
		return -1;
	return (int64_t)v * mult;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int replay_post(CURL *c, const char *url, const char *body, size_t len)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	CURLcode rc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK || code >= 300) {
		log_msg(LOG_WARN, "event=replay_post_failed status=%ld error=\"%s\"", code,
		        curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

static void *replay_main(void *arg)
{
	struct replayer *r = arg;
	FILE *f = fopen(r->file, "r");
	if (!f) {
		log_msg(LOG_ERROR, "event=replay_failed file=%s error=\"%s\"", r->file, strerror(errno));
		return NULL;
	}
	int64_t mult = !strcmp(r->precision, "s") ? 1000000000LL :
	               !strcmp(r->precision, "ms") ? 1000000LL :
	               !strcmp(r->precision, "us") ? 1000LL : 1;
	CURL *c = curl_easy_init();
	if (!c) {
		fclose(f);
		return NULL;
	}
	/* --replay-now: one pass for the newest timestamp, then every line's
	 * timestamp moves by (start time - newest), in the file's units */
	int64_t shift = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t n;
	if (r->to_now) {
		int64_t newest = -1;
		while ((n = getline(&line, &lcap, f)) > 0) {
			int64_t ev = line_time_ns(line, (size_t)(line[n - 1] == '\n' ? n - 1 : n), mult);
			if (ev > newest)
				newest = ev;
		}
		struct timespec wall;
		clock_gettime(CLOCK_REALTIME, &wall);
		int64_t now_ns = (int64_t)wall.tv_sec * 1000000000LL + wall.tv_nsec;
		if (newest > 0)
			shift = (now_ns - newest) / mult;
		rewind(f);
		log_msg(LOG_INFO, "event=replay_shift file=%s shift_s=%.0f", r->file,
		        (double)shift * (double)mult / 1e9);
	}
	char url[128];
	snprintf(url, sizeof url, "%s://127.0.0.1:%u/write?precision=%s", r->tls ? "https" : "http",
	         r->port, r->precision);
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: text/plain");
	if (r->token) {
		/* our replay token (event time); the address is our own loopback listener,
		 * so its certificate (maybe issued for another name) is not checked */
		char auth[600];
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->token);
		hdr = curl_slist_append(hdr, auth);
		explicit_bzero(auth, sizeof auth);
	}
	if (r->tls) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	size_t cap = 1 << 20, len = 0, lines = 0, posted = 0;
	char *batch = malloc(cap);
	int64_t first_ev = -1;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	log_msg(LOG_INFO, "event=replay_start file=%s speed=%g", r->file, r->speed);
	int64_t batch_ev = -1;
	while (batch && !atomic_load(&r->stop) && (n = getline(&line, &lcap, f)) > 0) {
		int64_t ev = line_time_ns(line, (size_t)(line[n - 1] == '\n' ? n - 1 : n), mult);
		/* Flush before a line whose event time lies in the future of the pace. */
		if (ev > 0 && ev != batch_ev && len > 0 && r->speed > 0) {
			replay_post(c, url, batch, len);
			posted += lines;
			len = lines = 0;
		}
		if (ev > 0 && r->speed > 0) {
			if (first_ev < 0)
				first_ev = ev;
			double due_ms = (double)(ev - first_ev) / 1e6 / r->speed;
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			double el_ms = (double)(now.tv_sec - t0.tv_sec) * 1e3 +
			               (double)(now.tv_nsec - t0.tv_nsec) / 1e6;
			if (due_ms > el_ms)
				sleep_ms((int64_t)(due_ms - el_ms));
		}
		batch_ev = ev;
		if (len + (size_t)n >= cap || lines >= 5000) {
			replay_post(c, url, batch, len);
			posted += lines;
			len = lines = 0;
		}
		if (shift && ev > 0) {
			/* rewrite the timestamp (the last token) */
			size_t end = (size_t)(line[n - 1] == '\n' ? n - 1 : n), i = end;
			while (i > 0 && line[i - 1] != ' ')
				i--;
			char ts[32];
			int tl = snprintf(ts, sizeof ts, "%lld\n", (long long)(ev / mult + shift));
			if (len + i + (size_t)tl < cap) {
				memcpy(batch + len, line, i);
				memcpy(batch + len + i, ts, (size_t)tl);
				len += i + (size_t)tl;
				lines++;
			}
		} else if ((size_t)n < cap) {
			memcpy(batch + len, line, (size_t)n);
			len += (size_t)n;
			lines++;
		}
	}
	if (batch && len && !atomic_load(&r->stop)) {
		replay_post(c, url, batch, len);
		posted += lines;
	}
	log_msg(LOG_INFO, "event=replay_done file=%s lines=%zu", r->file, posted);
	free(line);
	free(batch);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	fclose(f);
	return NULL;
}

/* Open DATA_DIR/foreshock.db, checking it against the data dir's marker
 * (datadir.h): a marker without a database means the database was deleted
 * since the last run, and starting empty would silently lose every alert and
 * all learned state, so that is refused with what to do instead. */
static int open_store(const char *dir, const char *dbpath, struct store **out, char *err,
                      size_t errlen)
{
	char id[64], merr[512];
	int have = datadir_marker_read(dir, id, sizeof id, merr, sizeof merr);
	if (have < 0) {
		snprintf(err, errlen, "%s", merr);
		return -1;
	}
	if (have && access(dbpath, F_OK) != 0 && errno == ENOENT) {
		snprintf(err, errlen, "database '%.300s' is missing, but data dir '%.300s' held "
		         "database %s (marker 'foreshock.id' there): restore a backup with 'foreshock "
		         "restore', or remove the marker to start with an empty database", dbpath, dir,
		         id);
		return -1;
	}
	char serr[768];
	struct store *s = store_open(dbpath, serr, sizeof serr);
	if (!s) {
		snprintf(err, errlen, "cannot open store: %s", serr);
		return -1;
	}
	if (!have || strcmp(id, store_id(s)) != 0) {
		if (have)
			log_msg(LOG_WARN, "event=store_replaced file=%s previous_id=%s id=%s "
			        "reason=\"the database is not the one this data dir held last\"", dbpath,
			        id, store_id(s));
		if (datadir_marker_write(dir, store_id(s), merr, sizeof merr) < 0) {
			snprintf(err, errlen, "%s", merr);
			store_close(s);
			return -1;
		}
	}
	*out = s;
	return 0;
}

enum {
	OPT_LOG_LEVEL = 256, OPT_MAX_SERIES, OPT_REPLAY, OPT_REPLAY_SPEED, OPT_REPLAY_PRECISION,
	OPT_CHECK, OPT_MODELS_DIR, OPT_SHARD, OPT_HEALTH_LISTEN, OPT_WRITE_TOKEN_FILE,
	OPT_READ_TOKEN_FILE, OPT_TLS_CERT_FILE, OPT_TLS_KEY_FILE, OPT_REPLAY_NOW,
	OPT_EXPORT_URL
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "model", required_argument, NULL, 'm' },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "max-series", required_argument, NULL, OPT_MAX_SERIES },
		{ "replay", required_argument, NULL, OPT_REPLAY },
		{ "replay-speed", required_argument, NULL, OPT_REPLAY_SPEED },
		{ "replay-precision", required_argument, NULL, OPT_REPLAY_PRECISION },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "models-dir", required_argument, NULL, OPT_MODELS_DIR },
		{ "shard", required_argument, NULL, OPT_SHARD },
		{ "replay-now", no_argument, NULL, OPT_REPLAY_NOW },
		{ "export-url", required_argument, NULL, OPT_EXPORT_URL },
		{ "health-listen", required_argument, NULL, OPT_HEALTH_LISTEN },
		{ "write-token-file", required_argument, NULL, OPT_WRITE_TOKEN_FILE },
		{ "read-token-file", required_argument, NULL, OPT_READ_TOKEN_FILE },
		{ "tls-cert-file", required_argument, NULL, OPT_TLS_CERT_FILE },
		{ "tls-key-file", required_argument, NULL, OPT_TLS_KEY_FILE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* First pass: only --config, so flags can override the file. */
	const char *config_path = NULL;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:l:d:m:hV", opts, NULL)) != -1) {
		if (c == 'c')
			config_path = optarg;
		else if (c == 'h') {
			usage(stdout);
			return 0;
		} else if (c == 'V') {
			printf("foreshockd %s\n", PACKAGE_VERSION);
			return 0;
		}
	}
	struct fs_config cfg;
	config_defaults(&cfg);
	char err[1024];
	if (config_path && config_load_file(&cfg, config_path, err, sizeof err) < 0) {
		fprintf(stderr, "foreshockd: invalid configuration: %s\n", err);
		config_free(&cfg);
		return 2;
	}
	int check_only = 0;
	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "c:l:d:m:hV", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'c': break;
		case 'l': config_set_str(&cfg.listen, optarg); break;
		case 'd': config_set_str(&cfg.data_dir, optarg); break;
		case 'm': config_set_str(&cfg.model_file, optarg); break;
		case OPT_LOG_LEVEL: config_set_str(&cfg.log_level, optarg); break;
		case OPT_MAX_SERIES: {
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end || v == 0) {
				fprintf(stderr, "foreshockd: invalid --max-series '%s'\n", optarg);
				config_free(&cfg);
				return 2;
			}
			cfg.engine.max_series = (size_t)v;
			break;
		}
		case OPT_REPLAY: config_set_str(&cfg.replay_file, optarg); break;
		case OPT_REPLAY_SPEED:
			cfg.replay_speed = strtod(optarg, &end);
			if (*end || cfg.replay_speed < 0) {
				fprintf(stderr, "foreshockd: invalid --replay-speed '%s'\n", optarg);
				config_free(&cfg);
				return 2;
			}
			break;
		case OPT_REPLAY_PRECISION: config_set_str(&cfg.replay_precision, optarg); break;
		case OPT_CHECK: check_only = 1; break;
		case OPT_MODELS_DIR: config_set_str(&cfg.models_dir, optarg); break;
		case OPT_REPLAY_NOW: cfg.replay_now = 1; break;
		case OPT_EXPORT_URL:
			if (rwexport_config_set_url(&cfg.export, optarg, err, sizeof err) < 0) {
				fprintf(stderr, "foreshockd: %s\n", err);
				config_free(&cfg);
				return 2;
			}
			break;
		case OPT_SHARD:
			if (config_set_external_label(&cfg, "shard", optarg, err, sizeof err) < 0) {
				fprintf(stderr, "foreshockd: invalid --shard '%s': %s\n", optarg, err);
				config_free(&cfg);
				return 2;
			}
			break;
		case OPT_HEALTH_LISTEN: config_set_str(&cfg.health_listen, optarg); break;
		case OPT_WRITE_TOKEN_FILE: config_set_str(&cfg.write_token_file, optarg); break;
		case OPT_READ_TOKEN_FILE: config_set_str(&cfg.read_token_file, optarg); break;
		case OPT_TLS_CERT_FILE: config_set_str(&cfg.tls_cert_file, optarg); break;
		case OPT_TLS_KEY_FILE: config_set_str(&cfg.tls_key_file, optarg); break;
		default:
			usage(stderr);
			config_free(&cfg);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "foreshockd: unexpected argument '%s'\n", argv[optind]);
		config_free(&cfg);
		return 2;
	}
	enum log_level lv;
	if (log_level_parse(cfg.log_level, &lv) < 0) {
		fprintf(stderr, "foreshockd: invalid log level '%s' (debug, info, warn, error)\n",
		        cfg.log_level);
		config_free(&cfg);
		return 2;
	}
	log_set_level(lv);
	char *model_path = NULL;
	struct model *model = load_model(cfg.model_file, err, sizeof err, &model_path);
	if (!model) {
		fprintf(stderr, "foreshockd: invalid model: %s\n", err);
		free(model_path);
		config_free(&cfg);
		return 2;
	}
	struct services *svcs = NULL;
	if (load_services(cfg.models_dir, &svcs, err, sizeof err) < 0) {
		fprintf(stderr, "foreshockd: invalid service model: %s\n", err);
		model_free(model);
		free(model_path);
		config_free(&cfg);
		return 2;
	}
	if (check_only) {
		printf("configuration ok; model '%s' from %s; %zu service model(s)\n", model_name(model),
		       model_path, svcs ? services_count(svcs) : 0);
		services_free(svcs);
		model_free(model);
		free(model_path);
		config_free(&cfg);
		return 0;
	}

	/* Signals are handled synchronously by the main thread only. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	gsl_set_error_handler_off(); /* GSL errors are return codes, never abort() */

	int rc = 1;
	struct store *store = NULL;
	struct engine *engine = NULL;
	struct http_server *http = NULL;
	struct metrics_cache *mcache = NULL;
	struct notifier *notifier = NULL;
	struct rwexport *exporter = NULL;
	struct outputs *outputs = NULL;
	struct replayer rep = { 0 };
	int lockfd = -1;
	struct selfstats stats;
	selfstats_init(&stats);

	if (mkdir_p(cfg.data_dir) < 0) {
		log_msg(LOG_ERROR, "event=startup_failed reason=\"cannot create data dir '%s': %s\"",
		        cfg.data_dir, strerror(errno));
		model_free(model);
		goto out;
	}
	lockfd = datadir_lock(cfg.data_dir, err, sizeof err);
	if (lockfd < 0) {
		log_msg(LOG_ERROR, "event=startup_failed reason=\"%s\"", err);
		model_free(model);
		goto out;
	}
	char dbpath[4096];
	snprintf(dbpath, sizeof dbpath, "%s/foreshock.db", cfg.data_dir);
	if (open_store(cfg.data_dir, dbpath, &store, err, sizeof err) < 0) {
		log_msg(LOG_ERROR, "event=startup_failed reason=\"%s\"", err);
		model_free(model);
		goto out;
	}
	cfg.engine.external_url = cfg.external_url;
	log_msg(LOG_INFO, "event=model_loaded model=%s file=%s", model_name(model), model_path);
	engine = engine_new(&cfg.engine, model, store, &stats, err, sizeof err);
	if (!engine) {
		log_msg(LOG_ERROR, "event=startup_failed reason=\"%s\"", err);
		goto out;
	}
	/* the remote_write exporter: started before HTTP, so no output is missed */
	if (cfg.export.url) {
		for (size_t i = 0; i < cfg.external_labels.n; i++)
			if (rwexport_config_add_label(&cfg.export, cfg.external_labels.names[i],
			                              cfg.external_labels.values[i]) < 0) {
				log_msg(LOG_ERROR, "event=startup_failed reason=\"out of memory\"");
				goto out;
			}
		exporter = rwexport_start(&cfg.export, err, sizeof err);
		outputs = exporter ? outputs_new(exporter, 15 * 60 * 1000) : NULL;
		if (!outputs) {
			log_msg(LOG_ERROR, "event=startup_failed reason=\"%s\"",
			        exporter ? "out of memory" : err);
			goto out;
		}
		outputs_attach(outputs, engine);
	}
	struct api_ctx api;
	memset(&api, 0, sizeof api);
	api.exporter = exporter;
	api.engine = engine;
	api.store = store;
	api.stats = &stats;
	api.max_body = (size_t)cfg.max_body;
	api.lp_limits = (struct lp_limits)LP_LIMITS_DEFAULT;
	api.metrics_series_limit = cfg.metrics_series_limit;
	api.version = PACKAGE_VERSION;
	api.external_labels = &cfg.external_labels;
	api.metrics_cache = mcache = metrics_cache_new(); /* NULL: /metrics builds it all */
	atomic_store(&api.ready, 0);
	struct http_config hc;
	config_http(&cfg, &hc);
	http = http_start(&hc, &api, err, sizeof err);
	if (!http) {
		log_msg(LOG_ERROR, "event=startup_failed reason=\"%s\"", err);
		goto out;
	}
	log_msg(LOG_INFO, "event=listening listen=%s port=%u data_dir=%s version=%s tls=%s",
	        cfg.listen, http_port(http), cfg.data_dir, PACKAGE_VERSION,
	        http_tls(http) ? "on" : "off");
	if (http_health_port(http))
		log_msg(LOG_INFO, "event=health_listening listen=%s health_port=%u", cfg.health_listen,
		        http_health_port(http));
	if (!cfg.external_url) {
		/* links in annotations point at the address we really listen on */
		char ext[300], host[256];
		snprintf(host, sizeof host, "%s", cfg.listen);
		char *colon = strrchr(host, ':');
		if (colon)
			*colon = '\0';
		snprintf(ext, sizeof ext, "%s://%s:%u", http_tls(http) ? "https" : "http",
		         host[0] ? host : "127.0.0.1", http_port(http));
		engine_set_external_url(engine, ext);
		if (!cfg.notify.external_url)
			config_set_str(&cfg.notify.external_url, ext);
	}
	engine_set_services(engine, svcs); /* before restore, so restored series bind too */
	svcs = NULL;
	long restored = engine_restore(engine, err, sizeof err);
	if (restored < 0) {
		log_msg(LOG_ERROR, "event=startup_failed reason=\"%s\"", err);
		goto out;
	}
	/* alert notifications: a thread that reads the store (notify.h) */
	if (!cfg.notify.external_url && cfg.external_url)
		config_set_str(&cfg.notify.external_url, cfg.external_url);
	labels_free(&cfg.notify.external_labels);
	if (labels_copy(&cfg.notify.external_labels, &cfg.external_labels) < 0) {
		log_msg(LOG_ERROR, "event=startup_failed reason=\"out of memory\"");
		goto out;
	}
	notifier = notifier_start(&cfg.notify, store, &stats, err, sizeof err);
	if (!notifier) {
		log_msg(LOG_ERROR, "event=startup_failed reason=\"%s\"", err);
		goto out;
	}
	atomic_store(&api.ready, 1);
	char *ident = labels_to_string(&cfg.external_labels);
	log_msg(LOG_INFO, "event=ready series_restored=%ld external_labels=%s", restored,
	        ident && *ident ? ident : "{}");
	free(ident);

	if (cfg.replay_file) {
		rep.file = cfg.replay_file;
		rep.speed = cfg.replay_speed;
		snprintf(rep.precision, sizeof rep.precision, "%s", cfg.replay_precision);
		rep.port = http_port(http);
		rep.to_now = cfg.replay_now;
		rep.tls = http_tls(http);
		rep.token = http_replay_token(http);
		if (pthread_create(&rep.tid, NULL, replay_main, &rep) == 0)
			rep.started = 1;
	}

	struct timespec last_ckpt;
	clock_gettime(CLOCK_MONOTONIC, &last_ckpt);
	struct reject_log rlog;
	reject_log_init(&rlog, &stats);
	unsigned tick = 0;
	for (;;) {
		struct timespec tmo = { .tv_sec = 1, .tv_nsec = 0 };
		int sig = sigtimedwait(&sigs, NULL, &tmo);
		if (sig == SIGTERM || sig == SIGINT) {
			log_msg(LOG_INFO, "event=shutdown signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
			break;
		}
		if (sig == SIGHUP) {
			char *path = NULL;
			struct model *m = load_model(cfg.model_file, err, sizeof err, &path);
			if (!m)
				log_msg(LOG_ERROR, "event=reload_failed file=%s error=\"%s\" keeping=previous",
				        path ? path : "?", err);
			else {
				log_msg(LOG_INFO, "event=reload model=%s file=%s", model_name(m), path);
				engine_set_model(engine, m);
			}
			free(path);
			struct services *ns = NULL;
			if (load_services(cfg.models_dir, &ns, err, sizeof err) < 0)
				log_msg(LOG_ERROR, "event=reload_failed what=services error=\"%s\" "
				                   "keeping=previous", err);
			else
				engine_set_services(engine, ns);
			size_t ntw = 0, ntr = 0;
			if (http && http_reload_tokens(http, &ntw, &ntr, err, sizeof err) < 0)
				log_msg(LOG_ERROR, "event=reload_failed what=tokens error=\"%s\" "
				                   "keeping=previous", err);
			else if (http && (cfg.write_token_file || cfg.read_token_file))
				log_msg(LOG_INFO, "event=tokens_reloaded write_tokens=%zu read_tokens=%zu",
				        ntw, ntr);
			continue;
		}
		/* storage faults are noticed within a second (store.h) */
		store_check(store);
		if (++tick % 5 == 0)
			store_maintain(store);
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		reject_log_tick(&rlog, &stats, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
		int64_t since = (int64_t)(now.tv_sec - last_ckpt.tv_sec) * 1000 +
		                (now.tv_nsec - last_ckpt.tv_nsec) / 1000000;
		if (cfg.checkpoint_interval_ms > 0 && since >= cfg.checkpoint_interval_ms - 50) {
			/* learned state of the series that changed, a bounded number per
			 * round (engine.h): a kill -9 loses about one interval */
			last_ckpt = now;
			long n = engine_persist(engine, cfg.checkpoint_max_series, err, sizeof err);
			if (n < 0)
				log_msg(LOG_ERROR, "event=state_write_failed error=\"%s\"", err);
			else if (n > 0)
				log_msg(LOG_DEBUG, "event=state_written series=%ld", n);
		}
		if (tick % 60 == 0) {
			int pruned = engine_prune(engine);
			if (pruned > 0)
				log_msg(LOG_INFO, "event=alerts_pruned count=%d", pruned);
		}
	}
	rc = 0;
out:
	if (rep.started) {
		atomic_store(&rep.stop, 1);
		pthread_join(rep.tid, NULL);
	}
	notifier_stop(notifier);
	if (http)
		http_stop(http);
	/* no more ingest: detach the outputs, then send what is queued (drain_timeout) */
	if (outputs)
		outputs_detach(outputs, engine);
	rwexport_stop(exporter);
	outputs_free(outputs);
	if (engine && rc == 0) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (engine_checkpoint(engine, err, sizeof err) < 0) {
			log_msg(LOG_ERROR, "event=checkpoint_failed error=\"%s\"", err);
			rc = 1;
		} else {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			struct engine_stats st;
			engine_get_stats(engine, &st);
			log_msg(LOG_INFO, "event=checkpoint series=%zu ms=%ld", st.series,
			        (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
		}
	}
	services_free(svcs); /* only if start-up failed before the engine took them */
	metrics_cache_free(mcache); /* the server (its only user) has stopped */
	engine_free(engine);
	store_close(store);
	if (lockfd >= 0)
		close(lockfd);
	free(model_path);
	config_free(&cfg);
	curl_global_cleanup();
	log_msg(LOG_INFO, "event=stopped status=%d", rc);
	return rc;
}
