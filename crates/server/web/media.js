// The microphone and the speaker: speech recorded in the browser as WebM/Opus (what Chromium and
// Firefox record, and what /v1/audio/transcriptions decodes) and answers read aloud through
// /v1/audio/speech.

import { call } from './api.js';

// Starts recording; resolves to {stop(): Promise<Blob>} or throws when no microphone is allowed.
export async function record() {
  if (!navigator.mediaDevices || !window.MediaRecorder) throw new Error('This browser cannot record audio.');
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const type = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm'].find((t) => MediaRecorder.isTypeSupported(t));
  const rec = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  const parts = [];
  rec.ondataavailable = (e) => { if (e.data.size) parts.push(e.data); };
  rec.start();
  return {
    stop: () => new Promise((resolve) => {
      rec.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        resolve(new Blob(parts, { type: rec.mimeType || 'audio/webm' }));
      };
      rec.stop();
    }),
  };
}

export async function transcribe(blob, model) {
  const form = new FormData();
  const ext = blob.type.includes('ogg') ? 'ogg' : 'webm';
  form.append('file', blob, `speech.${ext}`);
  form.append('model', model);
  const resp = await call('/v1/audio/transcriptions', { method: 'POST', body: form });
  return (await resp.json()).text || '';
}

let playing = null;

// Reads `text` aloud, replacing whatever was playing; resolves when playback ends or is stopped.
export async function speak(text, model) {
  const resp = await call('/v1/audio/speech', {
    method: 'POST',
    json: { model, input: text.slice(0, 4096), voice: 'alloy', response_format: 'wav' },
  });
  const url = URL.createObjectURL(await resp.blob());
  stopSpeaking();
  const audio = new Audio(url);
  playing = audio;
  try {
    await new Promise((resolve, reject) => {
      audio.onended = resolve;
      audio.onpause = resolve;
      audio.play().catch(reject);
    });
  } finally {
    URL.revokeObjectURL(url);
    if (playing === audio) playing = null;
  }
}

export function stopSpeaking() {
  if (playing) playing.pause();
  playing = null;
}
