#!/usr/bin/env python3
"""report.py — turns bench/run.sh's step records (JSON lines) into the
results file (JSON: metadata, medians, every raw record) and a Markdown
table. Medians over repetitions; ratios are foreshock / other target.

    report.py STEPS.jsonl OUT.json OUT.md
"""
import json
import statistics
import sys


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ms(x):
    return "-" if x is None else f"{x:.2f}"


def fmt(x, nd=0):
    if x is None:
        return "-"
    if isinstance(x, float) and nd == 0:
        return f"{x:,.0f}"
    return f"{x:,.{nd}f}"


def main():
    steps, out_json, out_md = sys.argv[1:4]
    recs = [json.loads(l) for l in open(steps) if l.strip()]
    by = {}
    for r in recs:
        by.setdefault(r["kind"], []).append(r["data"])
    meta = (by.get("meta") or [{}])[-1]
    names = {"foreshock": "foreshockd", "vm": "VictoriaMetrics", "influx": "InfluxDB 1.x"}

    # engine: median per (mode, series, model)
    eng = {}
    for d in by.get("engine", []):
        eng.setdefault((d["mode"], d["series"], d["model_file"], d["model"], d.get("batch")),
                       []).append(d)
    engine = []
    for (mode, series, mfile, mname, batch), ds in eng.items():
        engine.append({"mode": mode, "series": series, "model": mname, "model_file": mfile,
                       "batch": batch, "reps": len(ds),
                       "samples_per_s": med([d["samples_per_s"] for d in ds]),
                       "ns_per_sample": med([d["ns_per_sample"] for d in ds]),
                       "state_bytes": ds[0]["state_bytes"]})

    # ingest: median per (target, series, shape); records from before the
    # shapes existed are the single shape
    def key(d):
        return (d["target"], d["series"], d.get("shape", "single"))
    ing = {}
    for d in by.get("ingest", []):
        ing.setdefault(key(d), []).append(d)
    stored = {key(d): d for d in by.get("stored", [])}
    warm = {key(d): d for d in by.get("warm", [])}
    create = {key(d): d for d in by.get("create", [])}
    ingest = []
    order = {"foreshock": 0, "vm": 1, "influx": 2}
    sorder = {"single": 0, "multi": 1, "prw": 2}
    for (tg, s, shp), ds in sorted(ing.items(), key=lambda k: (k[0][1], sorder.get(k[0][2], 9),
                                                               order.get(k[0][0], 9))):
        st = stored.get((tg, s, shp), {})
        cr = create.get((tg, s, shp), {})
        wm = warm.get((tg, s, shp), {})
        sent_total = sum(d["loadgen"]["samples_2xx"] for d in ds) + \
            (cr.get("loadgen", {}).get("samples_2xx", 0)) + \
            (wm.get("loadgen", {}).get("samples_2xx", 0))
        row = {"target": tg, "series": s, "shape": shp, "reps": len(ds),
               "warm_rounds": wm.get("rounds", 0),
               "warm_samples_per_s": wm.get("loadgen", {}).get("samples_per_s_2xx"),
               "samples_per_s": med([d["samples_per_s"] for d in ds]),
               "samples_per_s_all": [round(d["samples_per_s"]) for d in ds],
               "loadgen_cpu_cores": med([d["loadgen"]["cpu_cores"] for d in ds]),
               "target_cpu_cores": med([d["target_cpu_s"] / d["wall_s"] for d in ds]),
               "samples_per_cpu_s": med([d["accepted"] / d["target_cpu_s"] for d in ds
                                         if d["target_cpu_s"] > 0]),
               "req_p99_ms": med([d["loadgen"]["lat_ms"]["p99"] for d in ds]),
               "non2xx": sum(d["loadgen"]["status"]["4xx"] + d["loadgen"]["status"]["5xx"]
                             for d in ds),
               "create_samples_per_s": (cr["accepted"] / cr["loadgen"]["wall_s"])
               if cr and cr["loadgen"]["wall_s"] > 0 else None,
               "sent_2xx_total": sent_total,
               "stored": st.get("stored"), "series_seen": st.get("series_seen"),
               "rss_empty_kb": st.get("rss_empty_kb"), "hwm_kb": st.get("hwm_kb")}
        if st.get("hwm_kb") and st.get("rss_empty_kb") is not None:
            row["bytes_per_series"] = (st["hwm_kb"] - st["rss_empty_kb"]) * 1024 / s
            row["samples_per_series"] = sent_total / s
        ingest.append(row)
    fs = {(r["series"], r["shape"]): r["samples_per_s"] for r in ingest
          if r["target"] == "foreshock"}
    for r in ingest:
        k = (r["series"], r["shape"])
        if r["target"] != "foreshock" and fs.get(k) and r["samples_per_s"]:
            r["foreshock_ratio"] = fs[k] / r["samples_per_s"]
    fsc = {(r["series"], r["shape"]): r["samples_per_cpu_s"] for r in ingest
           if r["target"] == "foreshock"}
    for r in ingest:
        k = (r["series"], r["shape"])
        if r["target"] != "foreshock" and fsc.get(k) and r["samples_per_cpu_s"]:
            r["foreshock_ratio_per_cpu"] = fsc[k] / r["samples_per_cpu_s"]

    memory = []
    for d in by.get("memory", []):
        m = dict(d)
        m["bytes_per_series"] = (d["hwm_kb"] - d["rss_empty_kb"]) * 1024 / d["series"]
        memory.append(m)

    summary = {"meta": meta, "engine": engine, "ingest": ingest, "memory": memory,
               "latency": by.get("latency", []), "restart": by.get("restart", []),
               "overload": by.get("overload", []), "batch": by.get("batch", []),
               "metrics": by.get("metrics", []), "raw": recs}
    with open(out_json, "w") as f:
        json.dump(summary, f, indent=1)

    L = []
    L.append(f"# foreshock benchmark {meta.get('date', '')}\n")
    L.append(f"nproc {meta.get('nproc')}, memory {int(meta.get('mem_kb', 0)) // 1024} MiB, "
             f"{meta.get('cpu', '')}; `{meta.get('command', '')}`; {meta.get('reps')} reps x "
             f"{meta.get('duration_s')} s; load average at end {meta.get('loadavg_end')}\n")
    L.append("## Detector engine alone (one core, no HTTP, no store)\n")
    L.append("| path | series | model | batch | samples/s/core | ns/sample | state bytes |")
    L.append("|---|---:|---|---:|---:|---:|---:|")
    for e in engine:
        L.append(f"| {e['mode']} | {e['series']:,} | {e['model']} | {e.get('batch') or ''} | "
                 f"{fmt(e['samples_per_s'])} | {fmt(e['ns_per_sample'], 1)} | {e['state_bytes']} |")
    L.append("\n## Ingest, 2 connections (medians; repetitions alternate between the targets)\n")
    L.append("Shapes: single = line protocol, one field per line, 5,000-line bodies; multi = "
             "line protocol as Telegraf sends it (cpu/mem/net lines, 4 tags, 10/3/8 fields), "
             "5,000-line bodies; prw = Prometheus remote_write, snappy protobuf, 2,000 samples "
             "per request.\n")
    L.append("| target | shape | series (warm-up rounds) | samples/s accepted (each rep) | reps | foreshock ratio "
             "| target CPU (cores) | samples per target CPU-s "
             "| loadgen CPU (cores) | req p99 ms | series creation samples/s | stored / sent "
             "| peak RSS - empty, bytes/series (samples/series) |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in ingest:
        ratio = (f"{r['foreshock_ratio']:.2f}x (per CPU {r.get('foreshock_ratio_per_cpu', 0):.2f}x)"
                 if r.get("foreshock_ratio") else "")
        bps = (f"{fmt(r.get('bytes_per_series'))} ({r.get('samples_per_series', 0):.0f})"
               if r.get("bytes_per_series") is not None else "-")
        L.append(f"| {names.get(r['target'], r['target'])} | {r['shape']} | "
                 f"{r['series']:,} ({r['warm_rounds']}) | "
                 f"{fmt(r['samples_per_s'])} {r['samples_per_s_all']} | {r['reps']} | {ratio} | "
                 f"{fmt(r['target_cpu_cores'], 2)} | {fmt(r['samples_per_cpu_s'])} | "
                 f"{fmt(r['loadgen_cpu_cores'], 3)} | "
                 f"{fmt(r['req_p99_ms'], 1)} | {fmt(r['create_samples_per_s'])} | "
                 f"{fmt(r['stored'])} / {fmt(r['sent_2xx_total'])} | {bps} |")
    if by.get("batch"):
        L.append("\n## Ingest as the body size varies (line protocol, 2 connections, one run "
                 "per size)\n")
        L.append("| target | series | lines per body | samples/s accepted | target CPU (cores) "
                 "| samples per target CPU-s | req p99 ms |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for d in sorted(by["batch"], key=lambda d: (order.get(d["target"], 9), d["lines"])):
            cpu = d["target_cpu_s"]
            L.append(f"| {names.get(d['target'], d['target'])} | {d['series']:,} | {d['lines']:,} | "
                     f"{fmt(d['samples_per_s'])} | {fmt(cpu / d['wall_s'], 2)} | "
                     f"{fmt(d['accepted'] / cpu if cpu > 0 else None)} | "
                     f"{fmt(d['loadgen']['lat_ms']['p99'], 1)} |")
    if memory:
        L.append("\n## Memory per active series (peak RSS minus the empty process)\n")
        L.append("| target | series | samples/series | peak RSS MiB | empty MiB | bytes/series |")
        L.append("|---|---:|---:|---:|---:|---:|")
        for m in memory:
            L.append(f"| {names.get(m['target'], m['target'])} | {m['series']:,} | {m['rounds']} | "
                     f"{m['hwm_kb'] / 1024:.0f} | {m['rss_empty_kb'] / 1024:.0f} | "
                     f"{fmt(m['bytes_per_series'])} |")
    if by.get("metrics"):
        L.append("\n## GET /metrics build time (foreshockd idle, 3 samples per series)\n")
        L.append("| series | first scrape s | next 4 scrapes, median s | shards reused | "
                 "body bytes | after one more round of samples s | shards reused |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|")
        for d in by["metrics"]:
            t = d["idle_s"]
            L.append(f"| {d['series']:,} | {t[0]:.3f} | {med(t[1:]) or 0:.3f} | "
                     f"{d['reused_idle'] if d['reused_idle'] is not None else '-'} | "
                     f"{d['body_bytes']:,} | {d['after_change_s']:.3f} | "
                     f"{d['reused_after_change'] if d['reused_after_change'] is not None else '-'} |")
    for d in by.get("latency", []):
        L.append(f"\n## Query latency, foreshockd, {d['series']:,} series"
                 + (f" ({d['alerts']} alerts listed)" if "alerts" in d else "")
                 + f", load {d['load']}"
                 + (f" ({d['rate']:,} samples/s paced; max measured {d.get('max_rate', 0):,})"
                    if d["rate"] else "") + "\n")
        if d.get("accepted_per_s") is not None:
            L.append(f"ingest accepted during the probe: {fmt(d['accepted_per_s'])} samples/s\n")
        if d.get("write"):
            w = d["write"]
            L.append(f"ingest during the probe: {fmt(w['samples_per_s_2xx'])} samples/s, "
                     f"write p99 {ms(w['lat_ms']['p99'])} ms\n")
        L.append("| GET | requests | p50 ms | p90 ms | p99 ms | max ms | non-2xx |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for p in d["get"]["paths"]:
            L.append(f"| `{p['path'][:60]}` | {p['requests']} | {p['p50']:.2f} | {p['p90']:.2f} | "
                     f"{p['p99']:.2f} | {p['max']:.2f} | {p['non2xx'] + p['errors']} |")
    for d in by.get("restart", []):
        L.append(f"\n## Restart, foreshockd, {d['series']:,} series checkpointed\n")
        L.append(f"SIGTERM to exit {d['shutdown_s']:.2f} s (checkpoint {d['checkpoint_ms']} ms); "
                 f"start to /readyz 200: **{d['ready_s']:.2f} s**; series restored "
                 f"{d['series_restored']:,}; RSS after restore {d['rss_after_restore_kb'] / 1024:.0f} MiB\n")
    for d in by.get("overload", []):
        w, p, b = d["write"], d["probe"]["paths"][0], d["big_body"]
        setup = f", {d['setup']}" if d.get("setup") and d["setup"] != "defaults" else ""
        L.append(f"\n## Overload, {names.get(d['target'], d['target'])}{setup}, {d['conns']} "
                 f"connections unpaced, {d['series']:,} series\n")
        L.append(f"accepted (2xx) {fmt(w['samples_per_s_2xx'])} samples/s; status 2xx "
                 f"{w['status']['2xx']}, 4xx {w['status']['4xx']}, 5xx {w['status']['5xx']} "
                 f"(429: {w['status']['429']}, 503: {w['status']['503']}), transport errors "
                 f"{w['errors']}; write latency p50 {ms(w['lat_ms']['p50'])} ms, p99 "
                 f"{ms(w['lat_ms']['p99'])} ms, max {ms(w['lat_ms']['max'])} ms; RSS max "
                 f"{d['rss_max_kb'] / 1024:.0f} MiB, after {d['rss_after_kb'] / 1024:.0f} MiB; "
                 f"health probe `{p['path']}` p99 {ms(p['p99'])} ms, max {ms(p['max'])} ms, "
                 f"failures {p['non2xx'] + p['errors']}; "
                 + (f"20 MB body: status 2xx "
                    f"{b['status']['2xx']}, 413 {b['status']['413']}, other 4xx/5xx "
                    f"{b['status']['4xx'] - b['status']['413'] + b['status']['5xx']}, errors "
                    f"{b['errors']}; " if b else "")
                 + f"process alive after: {'yes' if d['alive'] else 'NO'}\n")
    with open(out_md, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
