// Offer alerts: a short beep made with WebAudio (no sound file to fetch) and a desktop
// notification when the agent allowed them.

let audio = null;

/** Browsers allow sound only after a user gesture: call this from a click. */
export function unlockSound() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch {
    audio = null;
  }
}

/** Two short tones. Silent when audio is unavailable. */
export function beep() {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (const [i, freq] of [880, 1320].entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, now + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.2, now + i * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.18 + 0.15);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.18);
      osc.stop(now + i * 0.18 + 0.16);
    }
    return true;
  } catch {
    return false;
  }
}

/** Asks for permission to show desktop notifications. */
export async function askNotifications() {
  if (!("Notification" in window)) return "unsupported";
  if (Notification.permission === "default") return Notification.requestPermission();
  return Notification.permission;
}

/** Beeps and shows a desktop notification for a new offer. */
export function alertOffer(name, reason) {
  const sounded = beep();
  let notified = false;
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      new Notification(`New conversation: ${name}`, { body: reason, tag: "handoffd-offer" });
      notified = true;
    } catch {
      notified = false;
    }
  }
  // Counted on the page so that tests (and curious agents) can see alerts happened.
  document.body.dataset.alerts = String(Number(document.body.dataset.alerts || 0) + 1);
  return { sounded, notified };
}
