package metricfam

import (
	"bufio"
	"math"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// The text format's escapes: in HELP, and in quoted label values.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// TextHeader writes the HELP and TYPE lines of a family in the text
// format 0.0.4, as expfmt writes them. The name must be a valid legacy
// metric name (expfmt would quote any other).
func TextHeader(w *bufio.Writer, name, help string, typ dto.MetricType) {
	w.WriteString("# HELP ")
	w.WriteString(name)
	w.WriteByte(' ')
	helpEscaper.WriteString(w, help)
	w.WriteString("\n# TYPE ")
	w.WriteString(name)
	switch typ {
	case dto.MetricType_COUNTER:
		w.WriteString(" counter\n")
	case dto.MetricType_GAUGE:
		w.WriteString(" gauge\n")
	case dto.MetricType_HISTOGRAM:
		w.WriteString(" histogram\n")
	default:
		w.WriteString(" untyped\n")
	}
}

// TextSample writes one sample line, name{labels} v, as expfmt writes a
// counter's or a gauge's; labels sorted as in a family, their names
// valid legacy label names.
func TextSample(w *bufio.Writer, name string, labels []*dto.LabelPair, v float64) {
	textSample(w, name, "", labels, "", 0, v)
}

// TextHistogram writes a histogram series' lines as expfmt writes a
// const histogram's: a _bucket line per upper bound of uppers (finite,
// ascending) with its cumulative count, the +Inf bucket (count), _sum
// and _count.
func TextHistogram(w *bufio.Writer, name string, labels []*dto.LabelPair, uppers []float64, cum []uint64, count uint64, sum float64) {
	for i, u := range uppers {
		textSample(w, name, "_bucket", labels, "le", u, float64(cum[i]))
	}
	textSample(w, name, "_bucket", labels, "le", math.Inf(+1), float64(count))
	textSample(w, name, "_sum", labels, "", 0, sum)
	textSample(w, name, "_count", labels, "", 0, float64(count))
}

// textSample writes name+suffix{labels[,extra="x"]} v.
func textSample(w *bufio.Writer, name, suffix string, labels []*dto.LabelPair, extra string, x float64, v float64) {
	w.WriteString(name)
	w.WriteString(suffix)
	if len(labels) > 0 || extra != "" {
		sep := byte('{')
		for _, lp := range labels {
			w.WriteByte(sep)
			w.WriteString(lp.GetName())
			w.WriteString(`="`)
			valueEscaper.WriteString(w, lp.GetValue())
			w.WriteByte('"')
			sep = ','
		}
		if extra != "" {
			w.WriteByte(sep)
			w.WriteString(extra)
			w.WriteString(`="`)
			textFloat(w, x)
			w.WriteByte('"')
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	textFloat(w, v)
	w.WriteByte('\n')
}

// textFloat writes f as expfmt does.
func textFloat(w *bufio.Writer, f float64) {
	switch {
	case f == 1:
		w.WriteByte('1')
	case f == 0:
		w.WriteByte('0')
	case f == -1:
		w.WriteString("-1")
	case math.IsNaN(f):
		w.WriteString("NaN")
	case math.IsInf(f, +1):
		w.WriteString("+Inf")
	case math.IsInf(f, -1):
		w.WriteString("-Inf")
	default:
		w.Write(strconv.AppendFloat(w.AvailableBuffer(), f, 'g', -1, 64))
	}
}
