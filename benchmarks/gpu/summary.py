"""The GPU check's text summary (gpu_summary.txt): its report in a few lines a person
reads, and the end of the run tool's output. Standard library only."""

from __future__ import annotations


def summary_text(report: dict) -> str:
    """In: the report dict run_gpu_check.py writes. Out: lines, one block per part."""
    dev = report.get("device", {})
    pk = dev.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in pk.items() if v and k != "vlm-autodrive")
    lines = [
        f"GPU check ({report['mode']}), {report['started']}, {report.get('seconds', '?')} s",
        f"device: {dev.get('name')} ({dev.get('memory_gib', '-')} GiB, "
        f"driver/memory {dev.get('nvidia_smi', '-')})",
        f"versions: {versions}",
    ]
    env = report.get("environment", {})
    if env.get("error"):
        lines.append(f"environment: {env['error']}")
    if env.get("pip_check") and "No broken requirements" not in env["pip_check"]:
        lines.append("pip check: " + env["pip_check"].replace("\n", "; ")[:400])
    for name, entry in report.get("parts", {}).items():
        head = f"[{name}] {entry['status']} in {entry['seconds']} s"
        if entry["status"] != "ok":
            lines.append(head + ": " + (entry["error"] or "").splitlines()[0][:300])
        else:
            lines.append(head)
        lines += [f"    {line}" for line in _detail(name, entry["result"])]
    return "\n".join(lines)


def _detail(name: str, r: dict) -> list[str]:
    if not r:
        return []
    if name == "data":
        return [f"{r.get('videos')} videos at {r.get('size')} -> {r.get('clips')} clips"]
    if name == "model":
        return [f"{r.get('shape')}: {r.get('parameters', 0) / 1e9:.2f}B parameters"]
    if name == "decode":
        return _decode(r)
    if name == "sft":
        return _sft(r)
    if name == "eval":
        return [
            f"{mode}: {m.get('clips_per_s')} clips/s steady ({m.get('clips')} clips, "
            f"max_new_tokens {m.get('max_new_tokens')}; {m.get('clips_per_s_with_load')} "
            f"clips/s with the model load)"
            if "error" not in m
            else f"{mode}: error"
            for mode, m in r.items()
        ]
    if name == "grpo":
        return [
            f"{r.get('steps_per_s')} steps/s ({r.get('steps_timed')} timed after "
            f"{r.get('warmup_steps')} warm-up, {r.get('generations_per_step')} generations "
            f"a step; median step {r.get('median_step_s')} s)"
        ]
    return []


def _decode(r: dict) -> list[str]:
    src = r.get("source", {})
    out = [f"{r.get('clips')} clips, {src.get('codec')} {src.get('width')}x{src.get('height')}"]
    for dec in ("cpu", "h264_cuvid"):
        d = r.get(dec, {})
        out.append(
            f"{dec}: {d['fps']} frames/s ({d['frames']} frames)"
            if "fps" in d
            else f"{dec}: {d.get('error', 'not run')[:200]}"
        )
    if "cuvid_over_cpu" in r:
        out.append(f"cuvid/cpu x{r['cuvid_over_cpu']}, same frames: {r.get('same_frame_count')}")
    return out


def _sft(r: dict) -> list[str]:
    st = r.get("settings", {})
    tok = r.get("tokens_per_sample", {})
    out = [
        f"{st.get('model')}, {st.get('dtype')}, DeepSpeed {st.get('deepspeed')}, global batch "
        f"{st.get('global_batch_size')}, video {st.get('video')}",
        f"budget: {st.get('budget_note')}",
        f"tokens/sample: {tok.get('vision_tokens')} vision + {tok.get('text_tokens')} text "
        f"({tok.get('trained_tokens')} trained; transformers {tok.get('transformers')})",
        f"{'run':<5} {'samples/s':>10} {'tokens/s':>10} {'peak GiB':>9} {'median step s':>14}",
    ]
    for run in ("ours", "trl"):
        m = r.get(run, {})
        if m.get("samples_per_s") is not None:  # also for a run cut short after some steps
            out.append(
                f"{run:<5} {m['samples_per_s']:>10} {m['tokens_per_s']:>10} "
                f"{m.get('peak_allocated_gib')!s:>9} {m['median_step_s']:>14}"
            )
        if "error" in m:
            out.append(f"{run:<5} error: {m['error'].splitlines()[0][:200]}")
    for run in ("ours", "trl"):
        if r.get(run, {}).get("losses"):
            out.append(f"{run} losses by step: {r[run]['losses']}")
    ratio = r.get("ratio_ours_over_trl")
    if ratio:
        out.append(
            f"ours/trl: samples/s x{ratio['samples_per_s']}, peak memory x{ratio['peak_allocated']}"
        )
    return out
