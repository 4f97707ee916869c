// The widget's own words in the languages handoffd's analysis knows. The `data-language`
// option (or the browser's language) picks them; English is the fallback.

const STRINGS = {
  en: {
    greeting: "Hi! How can we help you today?",
    open: "Open chat", close: "Close chat", input: "Your message", placeholder: "Write a message…",
    send: "Send", sendLabel: "Send message", log: "Conversation", you: "You", assistant: "Assistant",
    notice: "Notice", agent: "Agent", typing: "typing…", offline: "Connection lost. Reconnecting…",
    quickReplies: "Suggested replies",
    eta: (n) => `About ${n} min.`,
    connecting: "Connecting…", queued: "Connecting you with a person…",
    position: (n) => `You are number ${n} in the queue.`, with: (name) => `You are chatting with ${name}`,
    person: "a person",
  },
  es: {
    greeting: "¡Hola! ¿En qué podemos ayudarte?",
    open: "Abrir chat", close: "Cerrar chat", input: "Tu mensaje", placeholder: "Escribe un mensaje…",
    send: "Enviar", sendLabel: "Enviar mensaje", log: "Conversación", you: "Tú", assistant: "Asistente",
    notice: "Aviso", agent: "Agente", typing: "escribiendo…", offline: "Conexión perdida. Reconectando…",
    quickReplies: "Respuestas sugeridas",
    eta: (n) => `Unos ${n} min.`,
    connecting: "Conectando…", queued: "Te estamos poniendo en contacto con una persona…",
    position: (n) => `Eres el número ${n} en la cola.`, with: (name) => `Estás hablando con ${name}`,
    person: "una persona",
  },
  fr: {
    greeting: "Bonjour ! Comment pouvons-nous vous aider ?",
    open: "Ouvrir le chat", close: "Fermer le chat", input: "Votre message", placeholder: "Écrivez un message…",
    send: "Envoyer", sendLabel: "Envoyer le message", log: "Conversation", you: "Vous", assistant: "Assistant",
    notice: "Info", agent: "Conseiller", typing: "écrit…", offline: "Connexion perdue. Reconnexion…",
    quickReplies: "Réponses suggérées",
    eta: (n) => `Environ ${n} min.`,
    connecting: "Connexion…", queued: "Nous vous mettons en relation avec une personne…",
    position: (n) => `Vous êtes numéro ${n} dans la file.`, with: (name) => `Vous discutez avec ${name}`,
    person: "une personne",
  },
  de: {
    greeting: "Hallo! Wie können wir Ihnen helfen?",
    open: "Chat öffnen", close: "Chat schließen", input: "Ihre Nachricht", placeholder: "Nachricht schreiben…",
    send: "Senden", sendLabel: "Nachricht senden", log: "Unterhaltung", you: "Sie", assistant: "Assistent",
    notice: "Hinweis", agent: "Mitarbeiter", typing: "schreibt…", offline: "Verbindung verloren. Neu verbinden…",
    quickReplies: "Antwortvorschläge",
    eta: (n) => `Etwa ${n} Min.`,
    connecting: "Verbinden…", queued: "Wir verbinden Sie mit einer Person…",
    position: (n) => `Sie sind Nummer ${n} in der Warteschlange.`, with: (name) => `Sie chatten mit ${name}`,
    person: "einer Person",
  },
  pt: {
    greeting: "Olá! Como podemos ajudar?",
    open: "Abrir chat", close: "Fechar chat", input: "A sua mensagem", placeholder: "Escreva uma mensagem…",
    send: "Enviar", sendLabel: "Enviar mensagem", log: "Conversa", you: "Você", assistant: "Assistente",
    notice: "Aviso", agent: "Agente", typing: "a escrever…", offline: "Ligação perdida. A religar…",
    quickReplies: "Respostas sugeridas",
    eta: (n) => `Cerca de ${n} min.`,
    connecting: "A ligar…", queued: "Estamos a ligá-lo a uma pessoa…",
    position: (n) => `É o número ${n} na fila.`, with: (name) => `Está a falar com ${name}`,
    person: "uma pessoa",
  },
  it: {
    greeting: "Ciao! Come possiamo aiutarti?",
    open: "Apri la chat", close: "Chiudi la chat", input: "Il tuo messaggio", placeholder: "Scrivi un messaggio…",
    send: "Invia", sendLabel: "Invia messaggio", log: "Conversazione", you: "Tu", assistant: "Assistente",
    notice: "Avviso", agent: "Operatore", typing: "sta scrivendo…", offline: "Connessione persa. Riconnessione…",
    quickReplies: "Risposte suggerite",
    eta: (n) => `Circa ${n} min.`,
    connecting: "Connessione…", queued: "Ti stiamo mettendo in contatto con una persona…",
    position: (n) => `Sei il numero ${n} in coda.`, with: (name) => `Stai parlando con ${name}`,
    person: "una persona",
  },
};

/** The strings for a BCP 47 tag such as "fr-CA"; English when the language is not known. */
export function stringsFor(language) {
  const primary = String(language || "en").toLowerCase().split("-")[0];
  return STRINGS[primary] || STRINGS.en;
}
