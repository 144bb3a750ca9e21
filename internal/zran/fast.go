package zran

import "encoding/binary"

// fast is the hot loop. It runs while at least 8 input bytes are buffered
// and a longest match fits before limit, so that neither input nor output
// needs a check per symbol: each iteration refills the bit buffer with one
// 8-byte load to at least 56 bits, enough for a length code, its extra
// bits, a distance code and its extra bits (15+5+15+13 = 48), or for three
// literals. Locals keep the state in registers; it is stored back on exit.
//
// It is exempt from race instrumentation (which slows it about tenfold and
// made the real-layer tests too slow for -race): it only touches the
// state of one decoder, which is never shared between goroutines.
//
//go:norace
func (f *inflater) fast() {
	in, ip := f.in, f.ip
	inEnd := len(in) - 8
	out, w := f.out, f.w
	outEnd := f.limit - maxMatch
	bits, nb := f.bits, f.nb
	lit, dist := f.lit, f.dist
	hist := f.hist
	trackEnd := f.trackEnd
	var err string

loop:
	for ip <= inEnd && w <= outEnd {
		bits |= binary.LittleEndian.Uint64(in[ip:]) << (nb & 63)
		ip += int((63 - nb) >> 3)
		nb |= 56

		e := lit.root[bits&(1<<litRoot-1)]
		if e&flagLit != 0 {
			bits >>= e & 15
			nb -= uint(e & 15)
			out[w] = byte(e >> 16)
			w++
			e = lit.root[bits&(1<<litRoot-1)]
			if e&flagLit != 0 {
				bits >>= e & 15
				nb -= uint(e & 15)
				out[w] = byte(e >> 16)
				w++
				e = lit.root[bits&(1<<litRoot-1)]
				if e&flagLit != 0 {
					bits >>= e & 15
					nb -= uint(e & 15)
					out[w] = byte(e >> 16)
					w++
					continue
				}
			}
			// A length may follow: top the buffer up again.
			if ip > inEnd {
				break
			}
			bits |= binary.LittleEndian.Uint64(in[ip:]) << (nb & 63)
			ip += int((63 - nb) >> 3)
			nb |= 56
		}
		if e&flagSub != 0 {
			bits >>= litRoot
			nb -= litRoot
			e = lit.sub[int(e>>16)+int(bits&(1<<(e>>4&15)-1))]
			if e&flagLit != 0 {
				bits >>= e & 15
				nb -= uint(e & 15)
				out[w] = byte(e >> 16)
				w++
				continue
			}
		}
		bits >>= e & 15
		nb -= uint(e & 15)
		if e&(flagEOB|flagInvalid) != 0 {
			if e&flagInvalid != 0 {
				err = "invalid literal/length code"
				break
			}
			f.endBlock()
			break
		}
		xb := e >> 4 & 15
		length := int(e>>16) + int(bits&(1<<xb-1))
		bits >>= xb
		nb -= uint(xb)

		d := dist.root[bits&(1<<distRoot-1)]
		if d&flagSub != 0 {
			bits >>= distRoot
			nb -= distRoot
			d = dist.sub[int(d>>16)+int(bits&(1<<(d>>4&15)-1))]
		}
		if d&flagInvalid != 0 {
			err = "invalid distance code"
			break
		}
		bits >>= d & 15
		nb -= uint(d & 15)
		xb = d >> 4 & 15
		dd := int(d>>16) + int(bits&(1<<xb-1))
		bits >>= xb
		nb -= uint(xb)
		if dd > w-hist {
			err = "distance too far back"
			break
		}

		src, end := w-dd, w+length
		if w < trackEnd {
			f.markUsed(src, length)
		}
		switch {
		case dd >= 16:
			// 16 bytes at a time, all from before w; may write up to 15
			// bytes past the match (outSlack).
			for ; w < end; w, src = w+16, src+16 {
				binary.LittleEndian.PutUint64(out[w:], binary.LittleEndian.Uint64(out[src:]))
				binary.LittleEndian.PutUint64(out[w+8:], binary.LittleEndian.Uint64(out[src+8:]))
			}
		case dd >= 8:
			// 8 bytes at a time; may write up to 7 bytes past the match,
			// into room the next symbols overwrite (or outSlack).
			for ; w < end; w, src = w+8, src+8 {
				binary.LittleEndian.PutUint64(out[w:], binary.LittleEndian.Uint64(out[src:]))
			}
		case dd == 1:
			v := uint64(out[src]) * 0x0101010101010101
			for ; w < end; w += 8 {
				binary.LittleEndian.PutUint64(out[w:], v)
			}
		default:
			for ; w < end; w, src = w+1, src+1 {
				out[w] = out[src]
			}
		}
		w = end
		continue loop
	}
	f.ip, f.w, f.bits, f.nb = ip, w, bits, nb
	if err != "" {
		f.corrupt(err)
	}
}
