/* lp_shapes.c — the line-protocol bodies of the benchmarks (lp_shapes.h). */
#include "lp_shapes.h"

#include <stdio.h>
#include <string.h>

static const char *const multi_fields[3][LP_FIELDS_MAX] = {
	{ "usage_user", "usage_system", "usage_idle", "usage_iowait", "usage_irq",
	  "usage_softirq", "usage_steal", "usage_nice", "usage_guest", "usage_guest_nice" },
	{ "available", "used", "used_percent" },
	{ "bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "err_in", "err_out",
	  "drop_in", "drop_out" },
};
static const unsigned multi_nf[3] = { 10, 3, 8 };
static const unsigned multi_off[3] = { 0, 10, 13 };
#define MULTI_PER_HOST 21

size_t lp_shape_lines(int multi, size_t S)
{
	if (!multi)
		return S;
	size_t rem = S % MULTI_PER_HOST;
	return S / MULTI_PER_HOST * 3 + (rem == 0 ? 0 : rem <= 10 ? 1 : rem <= 13 ? 2 : 3);
}

uint32_t lp_shape_line_series(int multi, size_t S, size_t k, size_t *nf)
{
	if (!multi) {
		*nf = 1;
		return (uint32_t)k;
	}
	size_t first = k / 3 * MULTI_PER_HOST + multi_off[k % 3];
	size_t n = multi_nf[k % 3];
	*nf = first + n <= S ? n : S - first;
	return (uint32_t)first;
}

void lp_put_digits(char *p, uint64_t v, int w)
{
	for (int i = w - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

size_t lp_shape_put_line(char *p, int multi, size_t S, size_t k, uint32_t *val_off,
                         uint32_t *ts_off)
{
	size_t nf, len = 0, cap = LP_LINE_MAX;
	uint32_t id = lp_shape_line_series(multi, S, k, &nf);
	int w;
	if (!multi) {
		w = snprintf(p, cap, "bench_cpu,host=h%07u,dc=dc%u,job=node value=", id, id % 8);
		len += (size_t)w;
		val_off[0] = (uint32_t)len;
		memset(p + len, '0', LP_VAL_W);
		len += LP_VAL_W;
	} else {
		uint32_t host = (uint32_t)(k / 3);
		unsigned m = (unsigned)(k % 3);
		if (m == 0)
			w = snprintf(p, cap, "cpu,cpu=cpu-total,dc=dc%u,env=prod,host=h%07u ",
			             host % 8, host);
		else if (m == 1)
			w = snprintf(p, cap, "mem,dc=dc%u,env=prod,host=h%07u,rack=r%02u ", host % 8,
			             host, host % 40);
		else
			w = snprintf(p, cap, "net,dc=dc%u,env=prod,host=h%07u,interface=eth0 ",
			             host % 8, host);
		len += (size_t)w;
		for (size_t f = 0; f < nf; f++) {
			w = snprintf(p + len, cap - len, "%s%s=", f ? "," : "", multi_fields[m][f]);
			len += (size_t)w;
			val_off[f] = (uint32_t)len;
			memset(p + len, '0', LP_VAL_W);
			len += LP_VAL_W;
		}
	}
	p[len++] = ' ';
	*ts_off = (uint32_t)len;
	memset(p + len, '0', LP_TS_W);
	len += LP_TS_W;
	p[len++] = '\n';
	return len;
}
