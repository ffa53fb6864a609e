# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Streaming voice activity detection and speech segmentation for one party.

Per 20 ms frame:
  1. sub-band powers of the telephone band (250-3500 Hz) from a Hann-windowed 256-point FFT
     over the last 32 ms at 8 kHz (16 kHz input is first decimated by a half-band FIR), so
     wideband and telephone audio go through the same analysis, and mains hum (50/60 Hz and
     its low harmonics) never enters the decision;
  2. a per-band noise floor by minimum statistics (minimum of the smoothed band power over a
     ~1.5 s sliding window, bias-corrected): it follows rising and falling noise without the
     lock-up of "update only when silent" schemes;
  3. a likelihood-ratio score averaged over bands (Sohn, Kim and Sung 1999, Gaussian model
     with a smoothed a-priori SNR): steady coloured noise, hum harmonics and G.711 idle noise
     are normalised away band by band, speech raises many bands at once;
  4. an absolute level gate, so near-digital silence never counts as speech;
  5. a segmenter: onset after a few voiced frames (back-dated to the first), hangover that
     bridges short pauses, segments trimmed to the last voiced frame, blips dropped.

Everything is causal and frame-synchronous: feeding a file in one call or frame by frame
gives identical output. Inner loops run without the GIL.
"""
from libc.math cimport log, log10, cos, sin, M_PI
from libc.stdint cimport int16_t, uint8_t
from libc.string cimport memset, memmove

cdef enum:
    FFT_N = 256          # 32 ms at the 8 kHz analysis rate: 31.25 Hz bins
    HALF_N = 128         # the real FFT runs as a 128-point complex FFT plus a split step
    FRAME8 = 160         # 20 ms at 8 kHz
    HB_TAPS = 31         # half-band decimation filter for 16 kHz input
    MAX_BANDS = 32
    SUBWINDOWS = 5

cdef double BIG = 1e30

# Band edges in Hz: roughly mel-spaced across the telephone band.
BAND_EDGES_HZ = (250, 375, 500, 625, 750, 900, 1050, 1200, 1400, 1600, 1850, 2100,
                 2400, 2750, 3100, 3500)


cdef class Segmenter:
    """Frame decisions to speech segments: onset, hangover, trimming, blip removal.

    A segment opens after ``onset_frames`` consecutive voiced frames (its start back-dated to
    the first of them), stays open across pauses shorter than ``hangover_frames``, ends
    ``tail_frames`` after its last voiced frame, and is dropped when shorter than
    ``min_speech_frames``. Used by PartyDetector, and usable on any VAD's decisions.
    """
    cdef readonly int onset_frames, hangover_frames, min_speech_frames, tail_frames
    cdef readonly long long frames_done
    cdef int in_speech, run_voiced
    cdef long long seg_start, last_voiced, run_start
    cdef list _segments

    def __cinit__(self, int onset_frames=2, int hangover_frames=15, int min_speech_frames=5,
                  int tail_frames=2):
        if onset_frames < 1 or hangover_frames < 0 or min_speech_frames < 1 or tail_frames < 0:
            raise ValueError("onset_frames and min_speech_frames must be >= 1; hangover_frames "
                             "and tail_frames must be >= 0")
        self.onset_frames = onset_frames
        self.hangover_frames = hangover_frames
        self.min_speech_frames = min_speech_frames
        self.tail_frames = tail_frames
        self.reset()

    cpdef void reset(self):
        self.frames_done = 0
        self.in_speech = 0
        self.run_voiced = 0
        self.seg_start = 0
        self.last_voiced = -1
        self.run_start = 0
        self._segments = []

    cdef void push(self, int voiced):
        cdef long long f = self.frames_done
        if voiced:
            if self.run_voiced == 0:
                self.run_start = f
            self.run_voiced += 1
            self.last_voiced = f
            if not self.in_speech and self.run_voiced >= self.onset_frames:
                self.in_speech = 1
                self.seg_start = self.run_start
        else:
            self.run_voiced = 0
            if self.in_speech and f - self.last_voiced >= self.hangover_frames:
                self._close()
        self.frames_done += 1

    cdef void _close(self):
        cdef long long end = self.last_voiced + 1 + self.tail_frames
        if end > self.frames_done:
            end = self.frames_done
        if end - self.seg_start >= self.min_speech_frames:
            self._segments.append((self.seg_start, end))
        self.in_speech = 0

    def push_many(self, const uint8_t[::1] voiced):
        """Advance by one decision per frame."""
        cdef Py_ssize_t i
        for i in range(voiced.shape[0]):
            self.push(voiced[i])

    def flush(self):
        """End of stream: close an open segment."""
        if self.in_speech:
            self._close()

    @property
    def open_segment_start(self):
        """Start frame of the segment in progress, or None."""
        return self.seg_start if self.in_speech else None

    def take_segments(self):
        """Closed segments since the last call, as [(start_frame, end_frame)]."""
        out = self._segments
        self._segments = []
        return out


cdef class PartyDetector:
    """Voice activity and speech segments of one party, fed int16 PCM as it arrives.

    ``process(pcm)`` consumes any number of samples (partial frames are kept for the next
    call) and returns the number of frames completed. Per-frame voiced flags and levels
    accumulate until ``take_frames()``; closed segments until ``take_segments()`` as
    (start_frame, end_frame) pairs, end exclusive.
    """
    cdef readonly int sample_rate, n_bands
    cdef readonly double threshold, level_floor_db, noise_bias
    cdef readonly Segmenter segmenter
    cdef readonly long long frames_done
    # decimation (16 kHz input): doubled circular delay line, so a window is contiguous
    cdef double dline[2 * HB_TAPS]
    cdef double hb[HB_TAPS]
    cdef int dpos, phase
    # analysis
    cdef double hist[FFT_N]        # last 32 ms at 8 kHz, newest at the end
    cdef int pending               # 8 kHz samples of the current frame received
    cdef double window[FFT_N]
    cdef double zr[HALF_N]
    cdef double zi[HALF_N]
    cdef double tw_re[HALF_N]      # twiddles of the 128-point FFT
    cdef double tw_im[HALF_N]
    cdef double sp_re[HALF_N + 1]  # split-step twiddles exp(-2 pi i k / 256)
    cdef double sp_im[HALF_N + 1]
    cdef int bitrev[HALF_N]
    cdef int band_lo[MAX_BANDS]
    cdef int band_hi[MAX_BANDS]
    cdef double smooth[MAX_BANDS]
    cdef double cur_min[MAX_BANDS]
    cdef double sub_min[SUBWINDOWS][MAX_BANDS]
    cdef double xi[MAX_BANDS]
    cdef double power_norm
    cdef int sub_len, sub_count, sub_filled, sub_pos
    cdef bytearray _voiced
    cdef list _levels

    def __cinit__(self, int sample_rate=16000, double threshold=0.5, double level_floor_db=-60.0,
                  int onset_frames=2, int hangover_frames=15, int min_speech_frames=5,
                  int tail_frames=2, double noise_bias=1.6, double noise_window_s=1.5):
        if sample_rate not in (8000, 16000):
            raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate}")
        if not noise_window_s > 0.1:
            raise ValueError(f"noise_window_s must be > 0.1 s, got {noise_window_s}")
        self.segmenter = Segmenter(onset_frames, hangover_frames, min_speech_frames, tail_frames)
        self.sample_rate = sample_rate
        self.threshold = threshold
        self.level_floor_db = level_floor_db
        self.noise_bias = noise_bias
        self.sub_len = max(1, <int>(noise_window_s * 50.0 / SUBWINDOWS + 0.5))

        cdef int i, j, m, bits = 7
        cdef double wsum = 0.0, x, c = (HB_TAPS - 1) / 2.0, gain = 0.0
        for i in range(FFT_N):
            self.window[i] = 0.5 - 0.5 * cos(2.0 * M_PI * i / FFT_N)
            wsum += self.window[i] * self.window[i]
        for i in range(HALF_N):
            j = 0
            m = i
            for _ in range(bits):
                j = (j << 1) | (m & 1)
                m >>= 1
            self.bitrev[i] = j
            self.tw_re[i] = cos(2.0 * M_PI * i / HALF_N)
            self.tw_im[i] = -sin(2.0 * M_PI * i / HALF_N)
        for i in range(HALF_N + 1):
            self.sp_re[i] = cos(2.0 * M_PI * i / FFT_N)
            self.sp_im[i] = -sin(2.0 * M_PI * i / FFT_N)
        # Half-band low-pass (cut-off fs/4), Blackman-windowed sinc; every other tap is zero.
        for i in range(HB_TAPS):
            x = i - c
            self.hb[i] = 0.5 if x == 0 else sin(M_PI * x / 2.0) / (M_PI * x)
            self.hb[i] *= 0.42 + 0.5 * cos(2.0 * M_PI * x / (HB_TAPS + 1)) \
                + 0.08 * cos(4.0 * M_PI * x / (HB_TAPS + 1))
            gain += self.hb[i]
        for i in range(HB_TAPS):
            self.hb[i] /= gain
        # A full-scale sine inside the band reads 0 dBFS.
        self.power_norm = 4.0 / (wsum * FFT_N * 32768.0 * 32768.0)

        cdef double bin_hz = 8000.0 / FFT_N
        edges = BAND_EDGES_HZ
        self.n_bands = len(edges) - 1
        for i in range(self.n_bands):
            self.band_lo[i] = <int>(edges[i] / bin_hz + 0.5)
            self.band_hi[i] = max(self.band_lo[i] + 1, <int>(edges[i + 1] / bin_hz + 0.5))
        self.reset()

    cpdef void reset(self):
        """Forget all state, as for a new call."""
        cdef int i, k
        memset(self.hist, 0, sizeof(self.hist))
        memset(self.dline, 0, sizeof(self.dline))
        self.dpos = 0
        self.phase = 0
        self.pending = 0
        self.frames_done = 0
        for k in range(MAX_BANDS):
            self.smooth[k] = 0.0
            self.cur_min[k] = BIG
            self.xi[k] = 0.0
            for i in range(SUBWINDOWS):
                self.sub_min[i][k] = BIG
        self.sub_count = 0
        self.sub_filled = 0
        self.sub_pos = 0
        self.segmenter.reset()
        self._voiced = bytearray()
        self._levels = []

    cdef void _fft128(self) noexcept nogil:
        cdef int i, j, size, half, step, k, start
        cdef double tr, ti, wr, wi, ur, ui
        for i in range(HALF_N):
            j = self.bitrev[i]
            if j > i:
                tr = self.zr[i]; self.zr[i] = self.zr[j]; self.zr[j] = tr
                ti = self.zi[i]; self.zi[i] = self.zi[j]; self.zi[j] = ti
        size = 2
        while size <= HALF_N:
            half = size >> 1
            step = HALF_N // size
            start = 0
            while start < HALF_N:
                for k in range(half):
                    wr = self.tw_re[k * step]
                    wi = self.tw_im[k * step]
                    i = start + k
                    j = i + half
                    tr = wr * self.zr[j] - wi * self.zi[j]
                    ti = wr * self.zi[j] + wi * self.zr[j]
                    ur = self.zr[i]; ui = self.zi[i]
                    self.zr[i] = ur + tr; self.zi[i] = ui + ti
                    self.zr[j] = ur - tr; self.zi[j] = ui - ti
                start += size
            size <<= 1

    cdef void _spectrum(self, double* power, double* level_db) noexcept nogil:
        """Band powers and level of the frame now complete in hist; learns the noise floor."""
        cdef int i, k, b, m, nb = self.n_bands
        cdef double p, total = 0.0
        cdef double ar, ai, br, bi, er, ei, orr, oi, xr, xim
        cdef int learn
        # Real 256-point FFT as a 128-point complex FFT of (even, odd) sample pairs.
        for i in range(HALF_N):
            self.zr[i] = self.hist[2 * i] * self.window[2 * i]
            self.zi[i] = self.hist[2 * i + 1] * self.window[2 * i + 1]
        self._fft128()
        for k in range(nb):
            p = 0.0
            for b in range(self.band_lo[k], self.band_hi[k]):
                m = (HALF_N - b) & (HALF_N - 1)
                ar = self.zr[b]; ai = self.zi[b]
                br = self.zr[m]; bi = -self.zi[m]          # conj(Z[N/2 - b])
                er = 0.5 * (ar + br); ei = 0.5 * (ai + bi)
                orr = 0.5 * (ai - bi); oi = -0.5 * (ar - br)  # -i/2 (Z - conj)
                xr = er + self.sp_re[b] * orr - self.sp_im[b] * oi
                xim = ei + self.sp_re[b] * oi + self.sp_im[b] * orr
                p += xr * xr + xim * xim
            power[k] = p * self.power_norm
            total += power[k]
        level_db[0] = 10.0 * log10(total + 1e-12)
        # The noise floor learns only from frames whose window is full of real audio and that
        # are not digital silence (packet loss, muted line): a zero-padded or dropped-out frame
        # would drag the minimum down and make the next noise window look like speech.
        learn = self.frames_done * FRAME8 >= FFT_N and level_db[0] > self.level_floor_db - 35.0
        if not learn:
            return
        for k in range(nb):
            if self.smooth[k] == 0.0:
                self.smooth[k] = power[k]
            else:
                self.smooth[k] = 0.7 * self.smooth[k] + 0.3 * power[k]
            if self.smooth[k] < self.cur_min[k]:
                self.cur_min[k] = self.smooth[k]
        # Advance the minimum-statistics sub-window.
        self.sub_count += 1
        if self.sub_count >= self.sub_len:
            for k in range(nb):
                self.sub_min[self.sub_pos][k] = self.cur_min[k]
                self.cur_min[k] = BIG
            self.sub_pos = (self.sub_pos + 1) % SUBWINDOWS
            if self.sub_filled < SUBWINDOWS:
                self.sub_filled += 1
            self.sub_count = 0

    cdef inline double _floor(self, int k) noexcept nogil:
        """Current noise floor of band k (BIG until something was learnt)."""
        cdef int i
        cdef double wmin = self.cur_min[k]
        for i in range(self.sub_filled):
            if self.sub_min[i][k] < wmin:
                wmin = self.sub_min[i][k]
        return wmin if wmin >= BIG else self.noise_bias * wmin + 1e-14

    cdef double _score(self, double* power, double* interference) noexcept nogil:
        """Band-averaged log likelihood ratio of speech vs the noise floor.

        ``interference`` (or NULL) is extra expected power per band that is not this party's
        speech, such as the other party's predicted echo; it counts as noise.
        """
        cdef int k, nb = self.n_bands
        cdef double gamma, x, llr = 0.0, floor_k
        for k in range(nb):
            floor_k = self._floor(k)
            if floor_k >= BIG:
                return 0.0              # nothing learnt yet: no decision possible
            gamma = power[k] / (floor_k + (interference[k] if interference != NULL else 0.0))
            if gamma > 1e4:
                gamma = 1e4
            # Smoothed a-priori SNR (decision-directed flavour), bounded below like Sohn's.
            x = gamma - 1.0
            if x < 0.0:
                x = 0.0
            self.xi[k] = 0.6 * self.xi[k] + 0.4 * x
            x = self.xi[k]
            if x < 0.003:
                x = 0.003
            llr += gamma * x / (1.0 + x) - log(1.0 + x)
        return llr / nb

    cdef int _decide(self, double score, double level):
        """Record the frame's decision and advance the segmenter."""
        cdef int voiced = score > self.threshold and level > self.level_floor_db
        self._voiced.append(voiced)
        self._levels.append(level)
        self.segmenter.push(voiced)
        self.frames_done += 1
        return voiced

    cdef inline void _push8(self, double y) noexcept nogil:
        self.hist[FFT_N - FRAME8 + self.pending] = y
        self.pending += 1

    cdef int _next_frame(self, const int16_t[::1] pcm, Py_ssize_t* pos, double* power,
                         double* level) noexcept nogil:
        """Consume input from pos[0] until a frame completes (1) or the input ends (0)."""
        cdef Py_ssize_t n_in = pcm.shape[0]
        cdef int i
        cdef double y, v
        cdef double* w
        while pos[0] < n_in and self.pending < FRAME8:
            v = pcm[pos[0]]
            pos[0] += 1
            if self.sample_rate == 8000:
                self._push8(v)
                continue
            self.dline[self.dpos] = v
            self.dline[self.dpos + HB_TAPS] = v
            self.dpos += 1
            if self.dpos == HB_TAPS:
                self.dpos = 0
            self.phase ^= 1
            if self.phase:
                continue
            # symmetric half-band: the centre tap plus pairs at odd distances from it (taps
            # at even distances are zero)
            w = &self.dline[self.dpos]
            y = self.hb[(HB_TAPS - 1) // 2] * w[(HB_TAPS - 1) // 2]
            for i in range(0, (HB_TAPS - 1) // 2, 2):
                y += self.hb[i] * (w[i] + w[HB_TAPS - 1 - i])
            self._push8(y)
        if self.pending < FRAME8:
            return 0
        self.pending = 0
        self._spectrum(power, level)
        # slide: keep the newest FFT_N - FRAME8 samples for the next window
        memmove(self.hist, self.hist + FRAME8, (FFT_N - FRAME8) * sizeof(double))
        return 1

    def process(self, const int16_t[::1] pcm):
        """Consume samples; return how many frames were completed."""
        cdef Py_ssize_t pos = 0
        cdef int done = 0, got
        cdef double score = 0.0, level = 0.0
        cdef double power[MAX_BANDS]
        while True:
            with nogil:
                got = self._next_frame(pcm, &pos, power, &level)
                if got:
                    score = self._score(power, NULL)
            if not got:
                break
            self._decide(score, level)
            done += 1
        return done

    def flush(self):
        """End of stream: close an open segment (a trailing partial frame is dropped)."""
        self.segmenter.flush()

    @property
    def open_segment_start(self):
        """Start frame of the segment in progress, or None."""
        return self.segmenter.open_segment_start

    def take_segments(self):
        """Closed segments since the last call, as [(start_frame, end_frame)]."""
        return self.segmenter.take_segments()

    def take_frames(self):
        """Per-frame (voiced flags as bytes, levels in dBFS as list) since the last call."""
        v, l = bytes(self._voiced), self._levels
        self._voiced = bytearray()
        self._levels = []
        return v, l


cdef enum:
    LEAK_FRAMES = 10     # the other party's recent peak power covers echo delays up to 200 ms


cdef class CallDetector:
    """Both parties of one call, frame by frame, with crosstalk (echo, bleed) compensation.

    Stereo recordings often carry a faint, delayed copy of one party in the other's channel
    (line or acoustic echo, recorder bleed). Per band and per direction, the leak gain is
    tracked as a high quantile of (this party's power / the other party's peak power over the
    last 200 ms) while the other party clearly dominates; that predicted leak (raised by
    ``leak_margin``) then counts as noise when this party's frame is scored. With no leak the
    estimate sits at the noise-to-speech ratio, so the expected interference is about this
    party's own noise floor while the other talks.

    ``process(agent, client)`` takes equal-length int16 chunks at the same rate.
    """
    cdef readonly PartyDetector agent, client
    cdef readonly double leak_margin, leak_quantile, leak_step
    cdef double recent[2][LEAK_FRAMES][MAX_BANDS]
    cdef double gain_db[2][MAX_BANDS]   # leak into party i from the other, per band (dB)
    cdef double gain_lin[2][MAX_BANDS]  # the same as a power ratio, times leak_margin
    cdef int learnt[2][MAX_BANDS]       # updates so far: early ones take bigger steps
    cdef int ring
    cdef readonly long long frames_done

    def __cinit__(self, double leak_margin_db=10.0, double leak_quantile=0.8,
                  double leak_step_db=1.0, **party_kwargs):
        if not 0.0 < leak_quantile < 1.0:
            raise ValueError(f"leak_quantile must be in (0, 1), got {leak_quantile}")
        self.agent = PartyDetector(**party_kwargs)
        self.client = PartyDetector(**party_kwargs)
        self.leak_margin = 10.0 ** (leak_margin_db / 10.0)
        self.leak_quantile = leak_quantile
        self.leak_step = leak_step_db
        self.reset()

    cpdef void reset(self):
        """Forget all state, as for a new call."""
        cdef int i, j, k
        self.agent.reset()
        self.client.reset()
        for i in range(2):
            for k in range(MAX_BANDS):
                self.gain_db[i][k] = -80.0        # no leak assumed until evidence
                self.gain_lin[i][k] = self.leak_margin * 1e-8
                self.learnt[i][k] = 0
                for j in range(LEAK_FRAMES):
                    self.recent[i][j][k] = 0.0
        self.ring = 0
        self.frames_done = 0

    cdef void _compensate(self, int me, PartyDetector det, double* mine, double other_score,
                          double dominance_db, double* out) noexcept nogil:
        """Predicted leak into party ``me`` per band (into ``out``); learns the leak gain."""
        cdef int j, k, nb = det.n_bands
        cdef double peak, ratio_db, excess, floor_k, step
        for k in range(nb):
            peak = 0.0
            for j in range(LEAK_FRAMES):
                if self.recent[1 - me][j][k] > peak:
                    peak = self.recent[1 - me][j][k]
            # the predicted leak is interference: scored as extra noise, not subtracted (a
            # subtraction leaves spiky residue that towers over a clean line's floor)
            out[k] = self.gain_lin[me][k] * peak
            # Quantile tracker of the leak ratio, updated while the other party talks: a high
            # quantile, because on a clean line any leak left over reads as speech, and this
            # party's own speech over the other's is a small share of those frames.
            # Learn only while the other party clearly dominates (a leak is always well below
            # its source): otherwise this party's own speech, echoed into the other channel,
            # would make the other look active and be learnt as leak.
            # Only power clearly above this party's own noise floor is evidence of a leak, so a
            # noisy line without echo learns no leak at all.
            if other_score > 4.5 and dominance_db > 10.0 and peak > 0.0:
                floor_k = det._floor(k)
                if floor_k >= BIG:
                    continue
                excess = mine[k] - 2.0 * floor_k
                ratio_db = 10.0 * log10(excess / peak) if excess > 0.0 else -200.0
                # converge within the first second of evidence, then settle
                step = self.leak_step * (4.0 if self.learnt[me][k] < 50 else 1.0)
                self.learnt[me][k] += 1
                if ratio_db < self.gain_db[me][k]:
                    self.gain_db[me][k] -= step * (1.0 - self.leak_quantile)
                else:
                    self.gain_db[me][k] += step * self.leak_quantile
                if self.gain_db[me][k] < -80.0:
                    self.gain_db[me][k] = -80.0
                self.gain_lin[me][k] = self.leak_margin * 10.0 ** (self.gain_db[me][k] / 10.0)

    def process(self, const int16_t[::1] agent, const int16_t[::1] client):
        """Consume equal-length chunks of both parties; return frames completed."""
        if agent.shape[0] != client.shape[0]:
            raise ValueError(f"agent and client chunks differ in length "
                             f"({agent.shape[0]} != {client.shape[0]})")
        cdef Py_ssize_t pa = 0, pc = 0
        cdef int got, done = 0, k, nb = self.agent.n_bands
        cdef double pw_a[MAX_BANDS]
        cdef double pw_c[MAX_BANDS]
        cdef double leak[MAX_BANDS]
        cdef double lev_a = 0.0, lev_c = 0.0, raw_a = 0.0, raw_c = 0.0, sa = 0.0, sc = 0.0
        while True:
            with nogil:
                # Both detectors always get equal input, so their frames complete together;
                # the client must consume its tail of a chunk too, even with no frame to show.
                got = self.agent._next_frame(agent, &pa, pw_a, &lev_a)
                self.client._next_frame(client, &pc, pw_c, &lev_c)
                if got:
                    for k in range(nb):
                        self.recent[0][self.ring][k] = pw_a[k]
                        self.recent[1][self.ring][k] = pw_c[k]
                    # who is clearly talking: mean band SNR without the smoothing state
                    raw_a = _mean_snr(self.agent, pw_a)
                    raw_c = _mean_snr(self.client, pw_c)
                    self._compensate(0, self.agent, pw_a, raw_c, lev_c - lev_a, leak)
                    sa = self.agent._score(pw_a, leak)
                    self._compensate(1, self.client, pw_c, raw_a, lev_a - lev_c, leak)
                    sc = self.client._score(pw_c, leak)
                    self.ring = (self.ring + 1) % LEAK_FRAMES
            if not got:
                break
            self.agent._decide(sa, lev_a)
            self.client._decide(sc, lev_c)
            self.frames_done += 1
            done += 1
        return done

    def flush(self):
        """End of call: close both parties' open segments."""
        self.agent.flush()
        self.client.flush()


cdef double _mean_snr(PartyDetector d, double* power) noexcept nogil:
    """A party's band-averaged a-posteriori SNR (power over noise floor); 4.5 or more means
    clearly talking (about a log likelihood ratio of 2)."""
    cdef int k, nb = d.n_bands
    cdef double floor_k, total = 0.0
    for k in range(nb):
        floor_k = d._floor(k)
        if floor_k >= BIG:
            return 0.0
        total += power[k] / floor_k
    return total / nb


def _leak_gains(CallDetector d):
    """Current leak-gain estimates in dB, per party and band (for diagnostics and tests)."""
    return [[d.gain_db[i][k] for k in range(d.agent.n_bands)] for i in range(2)]
