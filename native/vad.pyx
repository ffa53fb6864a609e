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
  5. a classifier of what else a line carries: one or two pure tones standing clear of the
     noise in their bins and holding their pitch (call progress, SIT, fax; DTMF with the key
     decoded), and music (notes held over the noise floor, steady spectrum, no fricatives or
     syllable dips, over a second). Tone and music frames are never speech, never train the
     noise floor in the tone's bands, and end a speech segment;
  6. a segmenter: onset after a few voiced frames (back-dated to the first), hangover that
     bridges short pauses, segments trimmed to the last voiced frame, blips dropped.

Decisions are frame-synchronous with a fixed look-ahead (``lookahead_frames``: music_min_s +
music_gap_s + 1 s, about 6 s by default): music is told from speech over seconds, so a
frame is decided once the seconds after it are known. Feeding a file in one call or frame by frame gives identical output; the
look-ahead only delays segments. Inner loops run without the GIL.
"""
from libc.math cimport log, log10, cos, sin, fabs, M_PI
from libc.stdint cimport int16_t, uint8_t
from libc.string cimport memset, memmove

cdef enum:
    FFT_N = 256          # 32 ms at the 8 kHz analysis rate: 31.25 Hz bins
    HALF_N = 128         # the real FFT runs as a 128-point complex FFT plus a split step
    FRAME8 = 160         # 20 ms at 8 kHz
    HB_TAPS = 31         # half-band decimation filter for 16 kHz input
    MAX_BANDS = 32
    SUBWINDOWS = 5
    NBINS = 128          # bins 0-127 of the 256-point FFT (0-3969 Hz)
    PK_LO = 9            # spectral peaks are looked for from 281 Hz ...
    PK_HI = 111          # ... to 3469 Hz
    MAX_PEAKS = 8
    STABLE_AGE = 6       # a peak held this many frames (120 ms) at one pitch is a held note
    RING = 1024          # per-frame history: covers the look-ahead (< RING frames)
    MUSIC_WIN = 50       # music features: means over 1 s centred on the frame
    RHYTHM_WIN = 250     # a beat: onsets' autocorrelation over the last 5 s ...
    RHYTHM_STEP = 10     # ... computed every 200 ms
    BEAT_MIN = 18        # beats 0.36 s ...
    BEAT_MAX = 80        # ... to under 1.6 s apart (38-167 per minute)
    ONSET_BANDS = 8      # onsets are measured in 8 bands, 125 Hz to 3.75 kHz
    ONSET_CAP_DB = 10    # a band's rise counts up to this
    TONE_MIN = 8         # a steady tone in the signalling band (300-2200 Hz): 160 ms or more
    TONE_MIN_OTHER = 20  # any other steady pure tone: 400 ms or more
    DTMF_MIN = 2         # a key press: 40 ms of a row and a column tone (ITU-T Q.24)
    TONE_GAP = 8         # a tone broken for up to 160 ms (a lost packet) goes on

# Frame classes, as take_classes() reports them.
CLS_SILENCE, CLS_SPEECH, CLS_TONE, CLS_MUSIC = 0, 1, 2, 3
DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
DTMF_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = "123A456B789C*0#D"

cdef double BIG = 1e30
cdef int[9] ONSET_EDGES = [4, 6, 9, 14, 21, 33, 51, 78, 120]   # FFT bins, geometric
cdef double BIN_HZ = 8000.0 / FFT_N
cdef double[4] ROW_HZ = [697.0, 770.0, 852.0, 941.0]
cdef double[4] COL_HZ = [1209.0, 1336.0, 1477.0, 1633.0]

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

    cdef void push_break(self):
        """A frame that is certainly not speech (a tone, music): an open segment ends at once,
        before it, instead of bridging across it."""
        if self.in_speech:
            self._close()
        self.run_voiced = 0
        self.frames_done += 1

    cdef void _close(self):
        cdef long long end = self.last_voiced + 1 + self.tail_frames
        if end > self.frames_done:
            end = self.frames_done
        if end - self.seg_start >= self.min_speech_frames:
            self._segments.append((self.seg_start, end))
        self.in_speech = 0

    def push_many(self, const uint8_t[::1] voiced):
        """Advance by one decision per frame: 1 voiced, 0 not, 2 a break (``push_break``)."""
        cdef Py_ssize_t i
        for i in range(voiced.shape[0]):
            if voiced[i] == 2:
                self.push_break()
            else:
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
    (start_frame, end_frame) pairs, end exclusive; tones, key presses and music until
    ``take_events()``.

    With ``classify`` (the default) a frame is decided ``lookahead_frames`` after it arrived
    (``frames_decided`` trails ``frames_done``); without, at once, and nothing is classified.
    """
    cdef readonly int sample_rate, n_bands
    cdef readonly double threshold, level_floor_db, noise_bias
    cdef readonly Segmenter segmenter
    cdef readonly long long frames_done, frames_decided
    cdef readonly bint classify
    cdef readonly int lookahead_frames, music_min_frames, music_gap_frames
    # music-likeness of a frame: a score over MUSIC_WIN frames centred on it (see _music_like)
    cdef public double music_bias, music_w_flux, music_w_stable, music_w_held, music_w_fric
    cdef public double music_w_dips, music_active_min, music_held_min
    cdef public double music_weak_active_min, music_weak_held_min, music_weak_margin
    cdef public double music_beat_min
    cdef double prev_ob[ONSET_BANDS]  # the previous frame's onset band levels (dB)
    cdef bint keep_features
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
    cdef int bin_band[NBINS]       # the band a bin belongs to (-1: outside the bands)
    cdef double smooth[MAX_BANDS]
    cdef double cur_min[MAX_BANDS]
    cdef double sub_min[SUBWINDOWS][MAX_BANDS]
    cdef double xi[MAX_BANDS]
    cdef double power_norm
    cdef int sub_len, sub_count, sub_filled, sub_pos
    cdef bint prev_silent          # the last frame was digital silence
    cdef bytearray _voiced
    cdef bytearray _classes
    cdef list _levels
    cdef list _events
    cdef list _features
    # spectral peaks and the current frame's features (set without the GIL by _frame_features)
    cdef double binp[NBINS]        # bin powers of the frame (a full-scale sine reads 1)
    cdef double prev_lb[MAX_BANDS] # the previous frame's band levels over the floor (dB)
    cdef int have_prev
    cdef double pk_f[MAX_PEAKS]    # the previous frame's peaks (fractional bins) and ages
    cdef int pk_age[MAX_PEAKS]
    cdef double pk_fl[MAX_PEAKS]   # the lowest noise floor of their band while they sounded
    cdef int n_pk
    cdef int f_tone, f_dtmf, f_fric, f_tonal, f_held
    cdef int f_b1, f_b2            # the bins of the tone's one or two lobes (-1: none)
    cdef double f_f1, f_f2, f_flux, f_stab, f_onset
    # the tone run in progress
    cdef int tr_len, tr_dtmf, tr_marked
    cdef long long tr_start, tr_last
    cdef double tr_f1, tr_f2, tr_sum1, tr_sum2, tr_lev
    cdef int tr_b1, tr_b2          # the run's lobes (bins), as its last frame read them
    cdef double tr_hist[TONE_MIN]  # the run's last pitches (lower tone), newest at tr_len - 1
    # per-frame history until decided, indexed by frame % RING
    cdef uint8_t r_voiced[RING]
    cdef uint8_t r_cls[RING]
    cdef uint8_t r_fric[RING]
    cdef uint8_t r_act[RING]
    cdef uint8_t r_held[RING]
    cdef uint8_t r_tone[RING]      # the frame alone reads as one or two pure tones
    cdef float r_flux[RING]
    cdef float r_onset[RING]       # how much the bands rose over the previous frame (dB)
    cdef float r_stab[RING]
    cdef float r_level[RING]
    # the music run in progress
    cdef long long m_next
    cdef int mr_active, mr_confirmed
    cdef long long mr_start, mr_last
    cdef long long bt_end          # the beat strength ``bt_val`` of the window ending here
    cdef double bt_val

    def __cinit__(self, int sample_rate=16000, double threshold=0.5, double level_floor_db=-60.0,
                  int onset_frames=2, int hangover_frames=15, int min_speech_frames=5,
                  int tail_frames=2, double noise_bias=1.6, double noise_window_s=1.5,
                  bint classify=True, double music_min_s=3.0, double music_gap_s=2.0,
                  bint keep_features=False):
        if sample_rate not in (8000, 16000):
            raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate}")
        if not noise_window_s > 0.1:
            raise ValueError(f"noise_window_s must be > 0.1 s, got {noise_window_s}")
        if not 1.0 <= music_min_s <= 10.0 or not 0.0 <= music_gap_s <= 2.0:
            raise ValueError("music_min_s must be 1-10 s and music_gap_s 0-2 s")
        self.classify = classify
        self.keep_features = keep_features
        self.music_min_frames = <int>(music_min_s * 50 + 0.5)
        self.music_gap_frames = <int>(music_gap_s * 50 + 0.5)
        # a frame is decided once its music run can have been confirmed and back-dated
        self.lookahead_frames = (self.music_min_frames + self.music_gap_frames + MUSIC_WIN + 2
                                 if classify else 0)
        self.music_bias = 5.0
        self.music_w_flux = -2.0
        self.music_w_stable = 10.0
        self.music_w_held = 25.0
        self.music_w_fric = -20.0
        self.music_w_dips = -10.0
        self.music_active_min = 0.5
        # positive evidence: a share of the second with a note standing out of the noise
        # floor (noise alone, however steady and dull, has none)
        self.music_held_min = 0.1
        # quiet music near the line noise loses notes and activity to it, so a second that
        # misses those gates may still be music, on a clear score only: speech in noise
        # scores near zero (a monotone synthetic voice in pink noise at 10 dB SNR reaches 3)
        self.music_weak_active_min = 0.3
        self.music_weak_held_min = 0.05
        self.music_weak_margin = 4.0
        # a steady beat (drums: onsets repeating at one period, and at twice it) is music
        # whatever its notes: in line noise a band's chords drown first and its drums read
        # as blips of speech. Speech's syllables come at no steady period: read speech,
        # synthetic voices and whole call channels stay under 0.36 (0.2 within speech)
        self.music_beat_min = 0.4
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
        for j in range(NBINS):
            self.bin_band[j] = -1
        for i in range(self.n_bands):
            for j in range(self.band_lo[i], min(self.band_hi[i], NBINS)):
                self.bin_band[j] = i
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
        self.prev_silent = False
        self.segmenter.reset()
        self._voiced = bytearray()
        self._classes = bytearray()
        self._levels = []
        self._events = []
        self._features = []
        self.frames_decided = 0
        memset(self.binp, 0, sizeof(self.binp))
        memset(self.prev_lb, 0, sizeof(self.prev_lb))
        memset(self.prev_ob, 0, sizeof(self.prev_ob))
        self.have_prev = 0
        self.n_pk = 0
        self.f_tone = self.f_fric = self.f_tonal = 0
        self.f_dtmf = -1
        self.f_b1 = self.f_b2 = -1
        self.f_f1 = self.f_f2 = self.f_flux = self.f_stab = self.f_onset = 0.0
        self.tr_len = self.tr_marked = 0
        self.tr_b1 = self.tr_b2 = -1
        self.tr_dtmf = -1
        self.tr_start = self.tr_last = 0
        self.tr_f1 = self.tr_f2 = self.tr_sum1 = self.tr_sum2 = self.tr_lev = 0.0
        self.m_next = 0
        self.mr_active = self.mr_confirmed = 0
        self.mr_start = self.mr_last = 0
        self.bt_end = -1
        self.bt_val = 0.0

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
        cdef double raw[NBINS]
        cdef int learn
        # Real 256-point FFT as a 128-point complex FFT of (even, odd) sample pairs.
        for i in range(HALF_N):
            self.zr[i] = self.hist[2 * i] * self.window[2 * i]
            self.zi[i] = self.hist[2 * i + 1] * self.window[2 * i + 1]
        self._fft128()
        for b in range(NBINS):
            m = (HALF_N - b) & (HALF_N - 1)
            ar = self.zr[b]; ai = self.zi[b]
            br = self.zr[m]; bi = -self.zi[m]          # conj(Z[N/2 - b])
            er = 0.5 * (ar + br); ei = 0.5 * (ai + bi)
            orr = 0.5 * (ai - bi); oi = -0.5 * (ar - br)  # -i/2 (Z - conj)
            xr = er + self.sp_re[b] * orr - self.sp_im[b] * oi
            xim = ei + self.sp_re[b] * oi + self.sp_im[b] * orr
            raw[b] = xr * xr + xim * xim
            self.binp[b] = raw[b] * self.power_norm
        for k in range(nb):
            p = 0.0
            for b in range(self.band_lo[k], self.band_hi[k]):
                p += raw[b]
            power[k] = p * self.power_norm
            total += power[k]
        level_db[0] = 10.0 * log10(total + 1e-12)
        if self.classify:
            self._frame_features(power, total, level_db[0])
        # The noise floor learns only from frames whose window is full of real audio and that
        # are not digital silence (packet loss, muted line): a zero-padded or dropped-out frame
        # would drag the minimum down and make the next noise window look like speech.
        # Nor from the frame after such silence: its window is part silence, and a floor
        # learnt from it sits dB under the line's noise until the window moves on.
        cdef bint silent = level_db[0] <= self.level_floor_db - 35.0
        learn = self.frames_done * FRAME8 >= FFT_N and not silent and not self.prev_silent
        self.prev_silent = silent
        if not learn:
            return
        for k in range(nb):
            # nor, in the bands a pure tone occupies, from the tone: a dial tone or a fax
            # answer held for seconds would become the floor and stop being told from it;
            # the other bands go on following the line's noise. Also while a tone run of 80 ms
            # or more goes on through a frame that did not read as one (a fax answer's phase
            # reversal, a lost packet): one such frame would lift the floor to the tone.
            if self.classify and ((self.f_tone and self._in_tone(k, self.f_b1, self.f_b2))
                                  or (self.tr_len >= TONE_MIN // 2
                                      and self._in_tone(k, self.tr_b1, self.tr_b2))):
                continue
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
                # a band a tone held all along keeps the floor it had before
                self.sub_min[self.sub_pos][k] = self.cur_min[k] if self.cur_min[k] < BIG else \
                    self.sub_min[(self.sub_pos + SUBWINDOWS - 1) % SUBWINDOWS][k]
                self.cur_min[k] = BIG
            self.sub_pos = (self.sub_pos + 1) % SUBWINDOWS
            if self.sub_filled < SUBWINDOWS:
                self.sub_filled += 1
            self.sub_count = 0

    cdef void _frame_features(self, double* power, double total, double level) noexcept nogil:
        """What the frame is besides loud: its spectral peaks and how long each has held its
        pitch, whether it is one or two pure tones (and which DTMF key), how much its band
        levels moved since the last frame, and whether its energy sits high (a fricative)."""
        cdef int b, i, j, k, n = 0, nb = self.n_bands, b1, b2, near, m
        cdef int pb[MAX_PEAKS]
        cdef int page[MAX_PEAKS]
        cdef double pv[MAX_PEAKS]
        cdef double pf[MAX_PEAKS]
        cdef double ppw[MAX_PEAKS]
        cdef double v, la, lb, lc, den, d, tol, stable = 0.0, w1, w2, noise = 0.0, excess
        cdef double fl, lev_k, band, flux = 0.0, rise = 0.0, hi = 0.0, lo = 0.0, f1, f2, flo, fhi, plo, phi
        cdef int row, col, best, bestj, held = 0
        cdef double pfl[MAX_PEAKS]
        cdef double* bp = self.binp
        # sharp local maxima (6 dB over the bins 3 away; on one side 5 away, so two tones 3
        # bins apart, such as dial tone 350 + 440 Hz, are both peaks), strongest first
        for b in range(PK_LO, PK_HI + 1):
            v = bp[b]
            if v <= bp[b - 1] or v < bp[b + 1]:
                continue
            if not ((v > 4.0 * bp[b - 3] and v > 4.0 * bp[b + 3])
                    or (v > 4.0 * bp[b - 3] and v > 4.0 * bp[b + 5])
                    or (v > 4.0 * bp[b - 5] and v > 4.0 * bp[b + 3])):
                continue
            if n < MAX_PEAKS:
                n += 1
            elif v <= pv[n - 1]:
                continue
            i = n - 1
            while i > 0 and pv[i - 1] < v:
                pv[i] = pv[i - 1]
                pb[i] = pb[i - 1]
                i -= 1
            pv[i] = v
            pb[i] = b
        for i in range(n):
            b = pb[i]
            la = log(bp[b - 1] + 1e-20)
            lb = log(bp[b] + 1e-20)
            lc = log(bp[b + 1] + 1e-20)
            den = la - 2.0 * lb + lc
            d = 0.5 * (la - lc) / den if den < 0.0 else 0.0
            if d > 0.5:
                d = 0.5
            elif d < -0.5:
                d = -0.5
            pf[i] = b + d
            ppw[i] = bp[b - 2] + bp[b - 1] + bp[b] + bp[b + 1] + bp[b + 2]
        # A peak that stays at its pitch (within ~1 %) frame after frame is a held note or a
        # tone; speech glides, so its harmonics rarely hold still for 120 ms.
        for i in range(n):
            tol = 0.15 + 0.004 * pf[i]
            best = 0
            bestj = -1
            for j in range(self.n_pk):
                if fabs(self.pk_f[j] - pf[i]) <= tol and self.pk_age[j] > best:
                    best = self.pk_age[j]
                    bestj = j
            page[i] = best + 1
            # A steady peak of the line itself (mains hum, a whistle) is part of the noise
            # floor of its band: only a note that stands out of the floor counts. Against the
            # lowest floor seen while the note sounded, since a note held for seconds lifts
            # the floor (minimum statistics) to itself.
            pfl[i] = self._band_floor(pb[i])
            if bestj >= 0 and self.pk_fl[bestj] < pfl[i]:
                pfl[i] = self.pk_fl[bestj]
            if page[i] >= STABLE_AGE and ppw[i] > 3.0 * pfl[i]:
                stable += ppw[i]
                if ppw[i] >= 0.01 * total:
                    held += 1
        for i in range(n):
            self.pk_f[i] = pf[i]
            self.pk_age[i] = page[i]
            self.pk_fl[i] = pfl[i]
        self.n_pk = n
        self.f_held = held
        self.f_stab = stable / total if total > 0.0 else 0.0
        if self.f_stab > 1.0:
            self.f_stab = 1.0
        self.f_tonal = n > 0 and ppw[0] >= 0.2 * total and ppw[0] > 3.0 * pfl[0]
        # Band levels over the noise floor: where there is only noise they hardly move, so the
        # flux measures how much the sound itself changes.
        for k in range(nb):
            fl = self._floor(k)
            if fl >= BIG:
                fl = 0.0
            noise += fl
            lev_k = 10.0 * log10(power[k] + fl + 1e-12)
            if self.have_prev:
                flux += fabs(lev_k - self.prev_lb[k])
            self.prev_lb[k] = lev_k
            if k >= 11:
                hi += power[k]
            elif k < 5:
                lo += power[k]
        self.f_flux = flux / nb if self.have_prev else 0.0
        # Onsets, for the beat: rises of eight wide bands from 125 Hz (a kick drum and the
        # bass sit under the speech bands), each counted up to ONSET_CAP_DB, none after
        # digital silence: the return from a dropout is no beat, and one such rise of 100 dB
        # would outweigh a window of drums
        rise = 0.0
        for k in range(ONSET_BANDS):
            band = 0.0
            for i in range(ONSET_EDGES[k], ONSET_EDGES[k + 1]):
                band += self.binp[i]
            lev_k = 10.0 * log10(band + 1e-12)
            if lev_k > self.prev_ob[k]:
                rise += min(lev_k - self.prev_ob[k], ONSET_CAP_DB)
            self.prev_ob[k] = lev_k
        self.f_onset = rise if self.have_prev and not self.prev_silent else 0.0
        self.have_prev = 1
        self.f_fric = hi > lo
        # One or two pure tones: nearly all the power not explained by noise sits in the
        # strongest peak (+-3 bins: two tones under 100 Hz apart merge into one lobe) and in
        # at most one other; a single tone also has no harmonic (a voice or an instrument has).
        # In noise, only peaks that stand clear of the noise floor count, and the noise's own
        # frame-to-frame spread is allowed for: a ringback a few dB over line noise is a tone.
        self.f_tone = 0
        self.f_dtmf = -1
        if n == 0 or level <= self.level_floor_db:
            return
        b1 = pb[0]
        w1 = 0.0
        for b in range(b1 - 3, b1 + 4):
            w1 += bp[b]
        b2 = -1
        w2 = 0.0
        for i in range(1, n):
            if (pb[i] - b1 >= 4 or b1 - pb[i] >= 4) and self._clear(pb[i], pv[i]):
                b2 = i
                break
        if b2 >= 0:
            for b in range(pb[b2] - 2, pb[b2] + 3):
                w2 += bp[b]
            if w2 * 40.0 < w1:
                b2 = -1
                w2 = 0.0
        for i in range(1, n):       # any other clear peak: a chord, a voice
            if i == b2:
                continue
            near = pb[i] - b1 <= 3 and b1 - pb[i] <= 3
            if b2 >= 0 and pb[i] - pb[b2] <= 3 and pb[b2] - pb[i] <= 3:
                near = 1
            if not near and pv[i] * 30.0 > pv[0] and self._clear(pb[i], pv[i]):
                return
        excess = total - w1 - w2 - noise
        if excess < 0.0:
            excess = 0.0
        # and the tone stands 10 dB over the noise in its own bins (not over the whole band:
        # a tone is heard, and read, a few dB under broadband noise of the same power)
        if (w1 + w2) < 0.9 * (w1 + w2 + excess) or not self._clear(b1, w1 / 7.0) \
                or (b2 >= 0 and not self._clear(pb[b2], w2 / 5.0)):
            return
        if b2 < 0 and 2 * b1 + 2 < NBINS:
            v = 0.0
            for b in range(2 * b1 - 2, 2 * b1 + 3):
                v += bp[b]
            # what the noise puts there (half again its mean, for its spread) is no harmonic
            if (v - 7.5 * self._bin_noise(2 * b1)) * 100.0 > w1:
                return
        if b2 < 0:
            # nor a pitch under it: a voice's strongest harmonic over its fundamental (the
            # tone test looks from 281 Hz up; wideband speech has F0 below that)
            v = 0.0
            for m in range(2, 4):
                for b in range((b1 + m // 2) // m - 1, (b1 + m // 2) // m + 2):
                    v += bp[b]
            if v * 20.0 > w1:
                return
        f1 = pf[0] * BIN_HZ
        f2 = pf[b2] * BIN_HZ if b2 >= 0 else 0.0
        if f2 > 0.0 and _harmonic_pair(f1, f2):
            return                  # two harmonics of one voice, not two signalling tones
        self.f_tone = 1
        self.f_b1 = b1
        self.f_b2 = pb[b2] if b2 >= 0 else -1
        self.f_f1 = f1 if f2 == 0.0 or f1 < f2 else f2
        self.f_f2 = f2 if f2 == 0.0 or f1 < f2 else f1
        if b2 < 0:
            return
        # DTMF: a row and a column frequency, each within 2.5 %, twist under 10 dB
        flo, fhi = self.f_f1, self.f_f2
        plo, phi = (w1, w2) if f1 < f2 else (w2, w1)
        row = col = -1
        for i in range(4):
            if fabs(flo - ROW_HZ[i]) <= 0.025 * ROW_HZ[i]:
                row = i
            if fabs(fhi - COL_HZ[i]) <= 0.025 * COL_HZ[i]:
                col = i
        if row >= 0 and col >= 0 and plo < 10.0 * phi and phi < 10.0 * plo:
            self.f_dtmf = row * 4 + col

    cdef inline bint _in_tone(self, int k, int b1, int b2) noexcept nogil:
        """Band k holds the lobe of a tone at bin b1 (or b2; -1: none)."""
        return ((b1 >= 0 and self.band_lo[k] <= b1 + 3 and b1 - 3 < self.band_hi[k])
                or (b2 >= 0 and self.band_lo[k] <= b2 + 3 and b2 - 3 < self.band_hi[k]))

    cdef inline double _bin_noise(self, int b) noexcept nogil:
        """Mean noise power of one bin of the band of bin ``b`` (0 when not known)."""
        cdef int k = self.bin_band[b]
        cdef double fl
        if k < 0:
            return 0.0
        fl = self._floor(k)
        return 0.0 if fl >= BIG else fl / (self.band_hi[k] - self.band_lo[k])

    cdef inline bint _clear(self, int b, double v) noexcept nogil:
        """Bin ``b`` holding ``v`` stands clear of the noise: ten times the mean noise power of
        a bin of its band (noise alone gets there in one frame of a few hundred per bin)."""
        cdef int k = self.bin_band[b]
        cdef double fl
        if k < 0:
            return True
        fl = self._floor(k)
        return fl >= BIG or v > 10.0 * fl / (self.band_hi[k] - self.band_lo[k])

    cdef inline double _band_floor(self, int b) noexcept nogil:
        """Noise floor of the band of bin ``b`` (BIG before any learning)."""
        cdef int k = self.bin_band[b]
        return 0.0 if k < 0 else self._floor(k)

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
        """Record the frame, classify what is due and decide the frames the look-ahead
        has passed (all of them at once without classification)."""
        cdef int voiced = score > self.threshold and level > self.level_floor_db
        cdef long long f = self.frames_done
        cdef int i = f % RING
        self._levels.append(level)
        if not self.classify:
            self._voiced.append(voiced)
            self._classes.append(CLS_SPEECH if voiced else CLS_SILENCE)
            self.segmenter.push(voiced)
            self.frames_done += 1
            self.frames_decided += 1
            return voiced
        self.r_voiced[i] = voiced
        self.r_cls[i] = CLS_SILENCE
        self.r_flux[i] = self.f_flux
        self.r_onset[i] = self.f_onset
        self.r_stab[i] = self.f_stab
        self.r_fric[i] = self.f_fric
        self.r_held[i] = self.f_held > 0
        self.r_tone[i] = self.f_tone
        self.r_level[i] = level
        self.r_act[i] = level > self.level_floor_db and (voiced or self.f_tonal or self.f_held > 0)
        if self.keep_features:
            self._features.append((self.f_flux, self.f_stab, self.f_tonal, self.f_fric,
                                   self.r_act[i], voiced, self.f_tone, self.f_f1, self.f_f2,
                                   self.f_dtmf, self.f_held, level))
        self._tone_step(f, level)
        self._music_window(f)
        self.frames_done += 1
        while self.frames_decided < self.frames_done - self.lookahead_frames:
            self._finalize_one()
        return voiced

    cdef void _finalize_one(self):
        cdef long long d = self.frames_decided
        cdef int i = d % RING, v = 0
        if self.r_cls[i] == CLS_SILENCE:
            v = self.r_voiced[i]
            self.segmenter.push(v)
            self._classes.append(CLS_SPEECH if v else CLS_SILENCE)
        else:
            self.segmenter.push_break()
            self._classes.append(self.r_cls[i])
        self._voiced.append(v)
        self.frames_decided += 1

    # --- tones ---------------------------------------------------------------------------

    cdef void _tone_step(self, long long f, double level):
        """Frame ``f`` continues the tone in progress (the same key, or the same pitches
        within 3 %), possibly after a gap of up to TONE_GAP frames (none for a key), starts
        another, or ends it."""
        cdef bint same = False
        cdef long long g
        cdef double m1, m2
        if self.tr_len > 0 and self.f_tone and self.f_dtmf == self.tr_dtmf:
            # against the run's mean pitch: two tones under 100 Hz apart (ringback 440 + 480)
            # merge into one lobe whose apparent pitch wanders between them with their beat,
            # up to about one and a half bins from their mean
            m1 = self.tr_sum1 / self.tr_len
            m2 = self.tr_sum2 / self.tr_len
            same = fabs(self.f_f1 - m1) <= 0.03 * m1 + 1.5 * BIN_HZ and (
                (self.f_f2 == 0.0 and self.tr_f2 == 0.0) or (
                    self.f_f2 > 0.0 and self.tr_f2 > 0.0
                    and fabs(self.f_f2 - m2) <= 0.03 * m2 + 1.5 * BIN_HZ))
        if not same:
            if self.tr_len > 0:
                if (not self.f_tone and self.tr_dtmf < 0
                        and f - self.tr_last <= TONE_GAP):
                    return              # perhaps a lost packet: wait for the tone to go on
                self._tone_end(True)
            if not self.f_tone:
                return
            self.tr_start = f
            self.tr_len = 0
            self.tr_dtmf = self.f_dtmf
            self.tr_sum1 = self.tr_sum2 = self.tr_lev = 0.0
            self.tr_marked = 0
        elif self.tr_marked:
            self._mark(self.tr_last + 1, f)        # the gap it went on after
        self.tr_len += 1
        self.tr_last = f
        self.tr_f2 = self.f_f2
        self.tr_b1 = self.f_b1
        self.tr_b2 = self.f_b2
        self.tr_sum1 += self.f_f1
        self.tr_hist[(self.tr_len - 1) % TONE_MIN] = self.f_f1
        self.tr_sum2 += self.f_f2
        self.tr_lev += level
        if self.tr_marked:
            self.r_cls[f % RING] = CLS_TONE
        elif self.tr_len >= self._tone_min() and (self.tr_dtmf >= 0 or self._steady()):
            # the frame before the tone saw its start in the end of its window
            g = self.tr_start - 1 if self.tr_start > self.frames_decided else self.tr_start
            self._mark(g, f + 1)
            self.tr_marked = 1

    cdef bint _steady(self):
        """The run's pitch holds: the mean of its last TONE_MIN frames' first half and of their
        second half differ by under 1.5 % + 8 Hz. Signalling tones hold their frequency
        (within 1.5 %), and two close tones beat around a fixed mean; a voice's harmonic
        glides with its pitch, so a vowel whose other harmonics drown in noise is no tone."""
        cdef int i, h = TONE_MIN // 2
        cdef double a = 0.0, b = 0.0, m
        for i in range(h):
            a += self.tr_hist[(self.tr_len - TONE_MIN + i) % TONE_MIN]
            b += self.tr_hist[(self.tr_len - h + i) % TONE_MIN]
        a /= h
        b /= h
        m = 0.5 * (a + b)
        return fabs(a - b) <= 0.015 * m + 8.0

    cdef void _mark(self, long long a, long long b):
        cdef long long g
        for g in range(a, b):
            self.r_cls[g % RING] = CLS_TONE

    cdef int _tone_min(self):
        if self.tr_dtmf >= 0:
            return DTMF_MIN
        if 300.0 <= self.tr_sum1 / self.tr_len <= 2200.0:
            return TONE_MIN
        return TONE_MIN_OTHER

    cdef void _tone_end(self, bint pad):
        """The tone run is over (its last frame ``tr_last``): report it if long enough."""
        cdef int n = self.tr_len
        cdef long long end = self.tr_last + 1
        if self.tr_marked:
            if pad and end < self.frames_done + 1:
                # the next frame's window still holds the tone's last 12 ms
                self.r_cls[end % RING] = CLS_TONE
            if self.tr_dtmf >= 0:
                self._events.append(("dtmf", self.tr_start, end, DTMF_KEYS[self.tr_dtmf]))
            else:
                self._events.append(("tone", self.tr_start, end, round(self.tr_sum1 / n, 1),
                                     round(self.tr_sum2 / n, 1), round(self.tr_lev / n, 1)))
        self.tr_len = 0
        self.tr_marked = 0

    # --- music ---------------------------------------------------------------------------

    cdef void _music_window(self, long long f):
        """Frame ``f`` completes the window of the frame MUSIC_WIN / 2 before it."""
        cdef long long u = f - MUSIC_WIN // 2
        if u < 0:
            return
        self._music_step(u, self._music_like(u, f + 1))
        self.m_next = u + 1

    cdef bint _music_like(self, long long u, long long end):
        """Music, by a score over the second around frame ``u`` (frames before ``end``).

        Pure-tone frames are left out: a cadenced tone (busy, ringback) holds its pitch like
        a note but sounds between silences, so what is left of its second is mostly quiet;
        in music a note that reads as a pure tone sits among others that do not (at least a
        fifth of the second must be left to judge). Of the rest,
        something sounds most of the time (the gate), and the score weighs what tells music
        from speech: held notes (peaks at one pitch for 120 ms or more: the share of frames
        with one, and the share of power in them) for it; spectral change from frame to frame
        (dB), fricatives (energy high in the band) and dips (frames 10 dB under the window's
        mean level: pauses between syllables) against it. The weights came from a logistic fit
        on generated calls (synthesised and recorded music, real speech), rounded. A second
        that misses the gates but passes their weak versions (``music_weak_*``) is music
        only on a score over ``music_weak_margin``. A second with too few notes for either
        but with sound in ``music_weak_active_min`` of it is music when the last 5 s carry a
        steady beat (``_beat`` at least ``music_beat_min``): drums outlast the notes in noise.
        """
        cdef long long a = u - MUSIC_WIN // 2 + 1, g
        cdef int i, n, act = 0, held = 0, fric = 0, dips = 0
        cdef double flux = 0.0, stab = 0.0, mean = 0.0, z
        cdef bint weak
        if self.r_cls[u % RING] == CLS_TONE:
            return False
        if a < 0:
            a = 0
        if end > u + MUSIC_WIN // 2 + 1:
            end = u + MUSIC_WIN // 2 + 1
        n = 0
        for g in range(a, end):
            i = g % RING
            if self.r_tone[i] or self.r_cls[i] == CLS_TONE:
                continue
            n += 1
            flux += self.r_flux[i]
            stab += self.r_stab[i]
            fric += self.r_fric[i]
            act += self.r_act[i]
            held += self.r_held[i]
            mean += self.r_level[i]
        if n < MUSIC_WIN // 5:
            return False
        weak = act < self.music_active_min * n or held < self.music_held_min * n
        if weak and (act < self.music_weak_active_min * n or held < self.music_weak_held_min * n):
            return act >= self.music_weak_active_min * n and self._beat(end) >= self.music_beat_min
        mean /= n
        for g in range(a, end):
            i = g % RING
            if not (self.r_tone[i] or self.r_cls[i] == CLS_TONE):
                dips += self.r_level[i] < mean - 10.0
        z = (self.music_bias + self.music_w_flux * flux / n + self.music_w_stable * stab / n
             + self.music_w_held * held / n + self.music_w_fric * fric / n
             + self.music_w_dips * dips / n)
        return z > (self.music_weak_margin if weak else 0.0)

    cdef double _beat(self, long long end):
        """How steady a beat the RHYTHM_WIN frames before ``end`` (rounded down to a
        multiple of RHYTHM_STEP, so that the chunking never matters) carry: the best, over
        periods of BEAT_MIN to BEAT_MAX frames, of the lesser of the onsets' autocorrelation
        at the period and at twice it (a beat repeats; a syllable rate wanders). Both are
        over the whole window's energy, so long periods, with fewer products, read lower:
        a slow beat needs to be steadier to count."""
        cdef long long e = end - end % RHYTHM_STEP, a = e - RHYTHM_WIN
        cdef int t, L
        cdef double m = 0.0, energy = 0.0, c1, c2, lesser, best = 0.0
        cdef double w[RHYTHM_WIN]
        if e == self.bt_end:
            return self.bt_val
        self.bt_end = e
        self.bt_val = 0.0
        if a < 0 or a <= self.frames_done - RING:
            return 0.0
        for t in range(RHYTHM_WIN):
            w[t] = self.r_onset[(a + t) % RING]
            m += w[t]
        m /= RHYTHM_WIN
        for t in range(RHYTHM_WIN):
            w[t] -= m
            energy += w[t] * w[t]
        if energy <= 1e-9:
            return 0.0
        for L in range(BEAT_MIN, BEAT_MAX):
            c1 = 0.0
            for t in range(RHYTHM_WIN - L):
                c1 += w[t] * w[t + L]
            if c1 <= best * energy:
                continue                # the lesser of the two cannot beat the best
            c2 = 0.0
            for t in range(RHYTHM_WIN - 2 * L):
                c2 += w[t] * w[t + 2 * L]
            lesser = c1 if c1 < c2 else c2
            if lesser > best * energy:
                best = lesser / energy
        self.bt_val = best
        return best

    cdef void _mark_music(self, long long a, long long b):
        cdef long long g
        for g in range(a, b):
            if self.r_cls[g % RING] == CLS_SILENCE:
                self.r_cls[g % RING] = CLS_MUSIC

    cdef void _music_step(self, long long u, bint m):
        """Frames that are music-like join runs across gaps under ``music_gap_frames``; a run
        of ``music_min_frames`` is music, from the sound's onset to its end."""
        cdef long long s
        if m:
            if not self.mr_active:
                self.mr_active = 1
                self.mr_confirmed = 0
                self.mr_start = u
            elif self.mr_confirmed:
                self._mark_music(self.mr_last + 1, u + 1)
            self.mr_last = u
            if not self.mr_confirmed and u - self.mr_start + 1 >= self.music_min_frames:
                s = self.mr_start       # back to the onset: the window saw it half-full
                while (s > self.frames_decided and s > self.mr_start - MUSIC_WIN // 2
                       and self.r_act[(s - 1) % RING] and self.r_cls[(s - 1) % RING] == CLS_SILENCE):
                    s -= 1
                self.mr_start = s
                self.mr_confirmed = 1
                self._mark_music(s, u + 1)
        elif self.mr_active and u - self.mr_last >= self.music_gap_frames:
            self._music_end()

    cdef void _music_end(self):
        cdef long long e = self.mr_last + 1
        if self.mr_confirmed:
            while (e < self.frames_done and e <= self.mr_last + MUSIC_WIN // 2
                   and self.r_act[e % RING] and self.r_cls[e % RING] == CLS_SILENCE):
                e += 1
            self._mark_music(self.mr_last + 1, e)
            self._events.append(("music", self.mr_start, e))
        self.mr_active = 0
        self.mr_confirmed = 0

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
        """End of stream: decide the frames still in the look-ahead (the windows they need
        end with the stream) and close an open segment (a trailing partial frame is
        dropped)."""
        if self.classify:
            self._drain()
        self.segmenter.flush()

    cdef void _drain(self):
        cdef long long u, end = self.frames_done
        if self.tr_len > 0:
            self._tone_end(self.tr_last + 1 < end)
        for u in range(self.m_next, end):
            self._music_step(u, self._music_like(u, end))
        self.m_next = end
        if self.mr_active:
            self._music_end()
        while self.frames_decided < end:
            self._finalize_one()

    @property
    def open_segment_start(self):
        """Start frame of the segment in progress, or None."""
        return self.segmenter.open_segment_start

    def take_segments(self):
        """Closed segments since the last call, as [(start_frame, end_frame)]."""
        return self.segmenter.take_segments()

    def take_frames(self):
        """Since the last call: voiced flags of the decided frames (bytes: speech, never a
        tone or music) and levels in dBFS of every frame analysed (list)."""
        v, l = bytes(self._voiced), self._levels
        self._voiced = bytearray()
        self._levels = []
        return v, l

    def take_classes(self):
        """Classes of the frames decided since the last call, as bytes: CLS_SILENCE (also
        noise), CLS_SPEECH (voiced), CLS_TONE, CLS_MUSIC."""
        c = bytes(self._classes)
        self._classes = bytearray()
        return c

    def take_events(self):
        """Tones, key presses and music found since the last call, in frames (end exclusive):
        ("tone", start, end, f1_hz, f2_hz or 0, level_dbfs), ("dtmf", start, end, key),
        ("music", start, end)."""
        out = self._events
        self._events = []
        return out

    def take_features(self):
        """Per-frame features (with ``keep_features``), for tuning and diagnostics:
        (flux_db, stable, tonal, fricative, active, voiced, tone, f1, f2, dtmf, held, level)."""
        out = self._features
        self._features = []
        return out


cdef bint _harmonic_pair(double f1, double f2) noexcept nogil:
    """f1 and f2 stand as two low harmonics of one pitch (ratio n/m, m < n <= 6, within
    1.5 %), as a vowel's strongest two often do. Signalling pairs never do: DTMF's are
    chosen not to, and the call-progress pairs that come near (350 + 440 Hz) are closer
    than the analysis separates, so they read as one lobe."""
    cdef int m, n
    cdef double r = f2 / f1 if f2 > f1 else f1 / f2
    for m in range(1, 6):
        for n in range(m + 1, 7):
            if fabs(r - <double>n / m) <= 0.015 * n / m:
                return True
    return False


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
